from pathlib import Path

import pytest

from longshort.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path, text):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "configs").glob("*.yaml")))
def test_shipped_configs_validate(name):
    config = load_config(REPO / "configs" / name)
    assert config.long.path and config.short.path


def test_relative_model_paths_resolve_against_the_config_folder(tmp_path):
    (tmp_path / "m").mkdir()
    config = load_config(write(tmp_path, "long: {path: ./m}\nshort: {path: Qwen/Qwen2.5-7B-Instruct}\n"))
    assert config.long.path == str(tmp_path / "m")
    assert config.short.path == "Qwen/Qwen2.5-7B-Instruct", "a hub name stays a hub name"


def test_unknown_key_is_an_error_naming_file_and_key(tmp_path):
    path = write(tmp_path, "long: {path: a, tempreature: 0.5}\nshort: {path: b}\n")
    with pytest.raises(ConfigError, match=r"run\.yaml: unknown key 'long\.tempreature'"):
        load_config(path)


def test_wrong_type_and_missing_key_are_named(tmp_path):
    with pytest.raises(ConfigError, match=r"'sampling\.seed'"):
        load_config(write(tmp_path, "long: {path: a}\nshort: {path: b}\nsampling: {seed: lots}\n"))
    with pytest.raises(ConfigError, match=r"'short': Field required"):
        load_config(write(tmp_path, "long: {path: a}\n"))


def test_unreadable_and_malformed_files_are_named(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config .*nope.yaml"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match=r"run.yaml, line \d+: not valid YAML"):
        load_config(write(tmp_path, "long: [unclosed\n"))
    with pytest.raises(ConfigError, match="run.yaml: a config is a mapping"):
        load_config(write(tmp_path, "- just\n- a list\n"))


def test_trust_remote_code_is_off_unless_asked(tmp_path):
    config = load_config(write(tmp_path, "long: {path: a}\nshort: {path: b, trust_remote_code: true}\n"))
    assert config.long.trust_remote_code is False and config.short.trust_remote_code is True


def test_chunking_defaults_and_bounds_that_cannot_be_met(tmp_path):
    config = load_config(write(tmp_path, "long: {path: a}\nshort: {path: b}\nchunking: {markers: [Wait, Hmm]}\n"))
    assert config.chunking.markers == ("Wait", "Hmm") and config.chunking.max_tokens == 256
    with pytest.raises(ConfigError, match=r"'chunking': max_tokens must be at least twice min_tokens"):
        load_config(write(tmp_path, "long: {path: a}\nshort: {path: b}\nchunking: {min_tokens: 90, max_tokens: 150}\n"))
    with pytest.raises(ConfigError, match=r"'chunking\.min_tokens'"):
        load_config(write(tmp_path, "long: {path: a}\nshort: {path: b}\nchunking: {min_tokens: 0}\n"))


def test_fold_after_defaults_to_the_segment_budget_and_may_not_pass_it(tmp_path):
    models = "long: {path: a}\nshort: {path: b}\n"
    assert load_config(write(tmp_path, models + "solve: {memory: {segment_budget: 50}}\n")).solve.memory.fold_at == 50
    memory = load_config(write(tmp_path, models + "solve: {memory: {segment_budget: 50, fold_after: 30}}\n")).solve.memory
    assert memory.fold_at == 30
    with pytest.raises(ConfigError, match=r"fold_after \(60\) must not exceed segment_budget \(50\)"):
        load_config(write(tmp_path, models + "solve: {memory: {segment_budget: 50, fold_after: 60}}\n"))


def test_every_path_key_resolves_against_the_config_folder_even_when_nested(tmp_path):
    config = load_config(write(tmp_path, "long: {path: a}\nshort: {path: b}\ntiny: {out_dir: ./world}\n"
                                         "rl: {init: ./cs, problems: ./p.jsonl, reward: {function: ./r.py}}\n"))
    assert config.tiny.out_dir == str(tmp_path / "world")
    assert (config.rl.init, config.rl.problems) == (str(tmp_path / "cs"), str(tmp_path / "p.jsonl"))
    assert config.rl.reward.function == str(tmp_path / "r.py")


def test_the_split_threshold_may_not_be_negative(tmp_path):
    models = "long: {path: a}\nshort: {path: b}\n"
    assert load_config(write(tmp_path, models)).coldstart.threshold > 0, "by default efficiency counts in the split"
    with pytest.raises(ConfigError, match=r"'coldstart\.threshold'"):
        load_config(write(tmp_path, models + "coldstart: {threshold: -0.1}\n"))
