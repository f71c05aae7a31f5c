"""Reports of a benchmark run: report.md (the table), plots/*.png, and a self-contained report.html with the
table, the plots and a trace viewer; and the side-by-side comparison of two runs (``longshort compare``).

The viewer shows each transcript's turns coloured by agent and summaries (folds) marked; when the run folder holds
a ``scored.jsonl`` from ``longshort score``, its traces are listed too, each thought with its importance score.
Everything is derived from the transcripts, summary.json and that file.
"""
from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

COLUMNS = [  # key, header, format
    ("pass@1", "pass@1", "{:.1%}"),
    ("answered", "answered", "{:.1%}"),
    ("long_tokens", "long tok", "{:.1f}"),
    ("short_tokens", "short tok", "{:.1f}"),
    ("tokens", "tokens", "{:.1f}"),
    ("turns", "turns", "{:.1f}"),
    ("folds", "folds", "{:.2f}"),
    ("peak_context", "peak ctx", "{:.0f}"),
    ("lookahead_tokens", "lookahead tok", "{:.1f}"),
    ("calls", "model calls", "{:.1f}"),
    ("wall_s", "wall s", "{:.1f}"),
    ("sample_s", "s/sample", "{:.3f}"),
    ("tokens_per_s", "tok/s", "{:.0f}"),
    ("orchestrator_share", "orch %", "{:.1%}"),
]


def _cell(row: dict, key: str, fmt: str) -> str:
    value = row.get(key)
    if value is None:
        return "–"
    text = fmt.format(value)
    if key == "pass@1":
        text += f" ± {row['pass@1_se']:.1%}"
    return text


def _pass_k_keys(summary: dict) -> list[str]:
    keys = {k for modes in summary["results"].values() for row in modes.values() for k in row
            if k.startswith("pass@") and k not in ("pass@1", "pass@1_se")}
    return sorted(keys, key=lambda k: int(k.split("@")[1]))


def table(summary: dict) -> tuple[list[str], list[list[str]]]:
    """The header and the formatted rows of the results table, one row per benchmark × mode."""
    from longshort.eval.modes import mode_label

    extra = _pass_k_keys(summary)
    head = ["benchmark", "mode", "n", "pass@1"] + extra + [h for _, h, _ in COLUMNS[1:]]
    rows = []
    for benchmark, modes in summary["results"].items():
        for mode, row in modes.items():
            cells = [benchmark, mode_label(mode), str(row["samples"]), _cell(row, "pass@1", "{:.1%}")]
            cells += [f"{row[k]:.1%}" if k in row else "–" for k in extra]
            cells += [_cell(row, key, fmt) for key, _, fmt in COLUMNS[1:]]
            rows.append(cells)
    return head, rows


def markdown_table(summary: dict) -> str:
    head, rows = table(summary)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in rows])


def plots(out: Path, summary: dict, transcripts: dict) -> list[Path]:
    """Accuracy vs tokens per mode; the long/short token split; context per turn (the fold saw-tooth)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = out / "plots"
    folder.mkdir(exist_ok=True)
    results, paths = summary["results"], []

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for benchmark, modes in results.items():
        xs = [row["tokens"] for row in modes.values()]
        ys = [row["pass@1"] for row in modes.values()]
        ax.scatter(xs, ys, label=benchmark)
        for mode, x, y in zip(modes, xs, ys):
            ax.annotate(mode, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set(xlabel="generated tokens per sample", ylabel="pass@1", title="Accuracy against tokens")
    ax.legend(fontsize=8)
    paths.append(_save(fig, folder / "accuracy_vs_tokens.png"))

    modes = list(dict.fromkeys(m for ms in results.values() for m in ms))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    longs = [_mean([ms[m]["long_tokens"] for ms in results.values() if m in ms]) for m in modes]
    shorts = [_mean([ms[m]["short_tokens"] for ms in results.values() if m in ms]) for m in modes]
    ax.bar(modes, longs, label="long", color="#3366cc")
    ax.bar(modes, shorts, bottom=longs, label="short", color="#ff9933")
    ax.set(ylabel="tokens per sample (mean over benchmarks)", title="Long / short token split")
    ax.tick_params(axis="x", rotation=45, labelsize=7)
    ax.legend()
    paths.append(_save(fig, folder / "token_split.png"))

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for mode, (curve, policy) in transcripts.items():
        ax.plot(range(1, len(curve) + 1), curve, marker=".", label=f"{mode}")
    ax.set(xlabel="turn", ylabel="context tokens", title="Context per turn (the transcript with most folds per mode)")
    ax.legend(fontsize=7)
    paths.append(_save(fig, folder / "context_per_turn.png"))
    return paths


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def plot_training(rows: list[dict], path: Path, gaps: list[dict] = ()) -> None:
    """An RL run's mean reward, accuracy and long-token share per step, each with a moving average; with ``gaps``
    (gap.jsonl), the held-out accuracy under Fold and Unfold and their gap."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    keys = ("reward", "accuracy", "long_share")
    figure, axes = plt.subplots(1, len(keys) + bool(gaps), figsize=(13 + 4 * bool(gaps), 3.5))
    for axis, key in zip(axes, keys):
        values = [r[key] for r in rows]
        window = max(1, len(values) // 10)
        smooth = [sum(values[max(0, i - window + 1):i + 1]) / len(values[max(0, i - window + 1):i + 1])
                  for i in range(len(values))]
        axis.plot(steps, values, alpha=0.35, label="per step")
        axis.plot(steps, smooth, label=f"mean of {window}")
        axis.set_xlabel("step")
        axis.set_title(key.replace("_", " "))
        axis.legend()
    if gaps:
        axis, at = axes[-1], [g["step"] for g in gaps]
        for key, label in (("fold_accuracy", "Fold"), ("unfold_accuracy", "Unfold"), ("fold_gap", "Unfold − Fold")):
            axis.plot(at, [g[key] for g in gaps], marker="o", label=label)
        axis.set_xlabel("step")
        axis.set_title("held-out accuracy, Fold vs Unfold")
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _viewer_items(out: Path, transcripts: dict, per_mode: int) -> list[dict]:
    """The transcripts shown in the viewer: the first ``per_mode`` of each benchmark × mode, as plain data."""
    from longshort.eval.metrics import correct

    items = []
    for benchmark, modes in transcripts.items():
        for mode, found in modes.items():
            for t in found[:per_mode]:
                items.append({
                    "title": f"{benchmark} · {mode} · {t.problem.id} #{t.sample}",
                    "question": t.problem.question, "gold": t.problem.answer, "answer": t.answer,
                    "correct": correct(t), "stop": t.stop_reason,
                    "turns": [{"agent": u.agent, "kind": u.kind, "text": u.text, "tokens": len(u.token_ids),
                               "score": None} for u in t.turns],
                })
    scored = out / "scored.jsonl"  # `longshort score --output <run>/scored.jsonl` puts importance in the viewer
    if scored.exists():
        for line in open(scored):
            record = json.loads(line)
            if "chunks" not in record:
                continue
            items.append({
                "title": f"importance · {record['id']}", "question": "", "gold": record["answer"],
                "answer": None, "correct": False, "stop": f"{record['rollouts']} rollouts per prefix",
                "turns": [{"agent": "long", "kind": "think", "text": c["text"], "tokens": c["tokens"],
                           "score": c.get("score")} for c in record["chunks"]],
            })
    return items


def _context_curves(summary: dict, transcripts: dict) -> dict:
    """Per mode: the context per turn of the transcript with the most folds (then turns), over all benchmarks."""
    from longshort.eval.metrics import context_per_turn

    curves = {}
    for mode, spec in summary["modes"].items():
        found = [t for modes in transcripts.values() for t in modes.get(mode, ())]
        longest = max(found, key=lambda t: (t.folds, len(t.turns)), default=None)
        if longest is not None and longest.turns:
            curves[mode] = (context_per_turn(longest), spec["memory"])
    return curves


def write_reports(out: Path, summary: dict, transcripts: dict, config) -> None:
    """report.md, plots/ and report.html from the summary and the transcripts (benchmark -> mode -> list)."""
    out = Path(out)
    table = markdown_table(summary)
    timeouts = summary.get("grading", {}).get("timeouts", 0)
    graded = f" {timeouts} gradings ran out of time and count as wrong." if timeouts else ""
    (out / "report.md").write_text(f"# Benchmark run\n\n{table}\n\npass@1 ± its standard error over problems.{graded} "
                                   f"{_answer_key_note(summary)}Versions: {json.dumps(summary['versions'])}\n")
    images = plots(out, summary, _context_curves(summary, transcripts))
    items = _viewer_items(out, transcripts, config.eval.viewer_transcripts)
    (out / "report.html").write_text(html_page(summary, images, items))


def _answer_key_note(summary: dict) -> str:
    """The note under a table with a mode that reads the answer key, else nothing."""
    from longshort.eval.modes import ANSWER_KEY_NOTE, reads_answer_key

    oracle = any(reads_answer_key(mode) for modes in summary["results"].values() for mode in modes)
    return ANSWER_KEY_NOTE + " " if oracle else ""


def html_page(summary: dict, images: list[Path], items: list[dict]) -> str:
    """One file: inline CSS and script, plots as data URIs, transcripts as JSON for the viewer."""
    head, rows = table(summary)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>" for cells in rows)
    results = ("<table id='results'><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head)
               + "</tr></thead><tbody>" + body + "</tbody></table>")
    figures = "".join(
        f"<figure><img alt='{html.escape(p.stem)}' src='data:image/png;base64,"
        f"{base64.b64encode(p.read_bytes()).decode()}'><figcaption>{html.escape(p.stem)}</figcaption></figure>"
        for p in images)
    data = json.dumps(items).replace("</", "<\\/")
    return PAGE.format(table=results, figures=figures, data=data, note=html.escape(_answer_key_note(summary)),
                       versions=html.escape(json.dumps(summary["versions"])))


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>longshort benchmark run</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; font-size: 13px; }}
td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}
td:nth-child(-n+2), th:nth-child(-n+2) {{ text-align: left; }}
figure {{ display: inline-block; margin: 1em 1em 0 0; }} img {{ max-width: 640px; }}
#viewer .turn {{ white-space: pre-wrap; padding: 2px 4px; margin: 2px 0; border-radius: 3px; }}
.long {{ background: #dbe6fb; }} .short {{ background: #ffe7cc; }}
.summary {{ border: 2px dashed #884; }} .answer {{ font-weight: bold; }}
.fold {{ color: #884; font-size: 11px; margin: 4px 0; cursor: pointer; }}
details.segment {{ border-left: 3px solid #cc9; padding-left: 6px; margin: 4px 0; }}
.tag {{ font-size: 10px; color: #555; margin-right: 6px; }}
.ok {{ color: #070; }} .wrong {{ color: #b00; }}
</style></head><body>
<h1>longshort benchmark run</h1>
<h2>Results</h2>{table}
<p class="tag">pass@1 ± standard error over problems · {note}versions {versions}</p>
<h2>Plots</h2>{figures}
<h2>Transcripts</h2>
<p><span class="turn long">long</span> <span class="turn short">short</span>
<span class="turn summary">summary (fold)</span></p>
<select id="pick"></select>
<div id="viewer"></div>
<script id="transcripts" type="application/json">{data}</script>
<script>
const items = JSON.parse(document.getElementById("transcripts").textContent);
const pick = document.getElementById("pick"), viewer = document.getElementById("viewer");
items.forEach((item, i) => {{
  const option = document.createElement("option");
  option.value = i; option.textContent = item.title; pick.appendChild(option);
}});
function show(i) {{
  const item = items[i];
  viewer.replaceChildren();
  const head = document.createElement("p");
  head.style.whiteSpace = "pre-wrap";  // a question's lines stay lines
  head.append(item.question);
  const verdict = document.createElement("p");
  verdict.className = item.correct ? "ok" : "wrong";
  verdict.textContent = `answer: ${{item.answer}} · gold: ${{item.gold}} · ${{item.stop}}`;
  viewer.append(head, verdict);
  // a folded segment is shown as its summary; opening it shows the steps the summary replaced in the context
  let segment = [];
  for (const turn of item.turns) {{
    const div = document.createElement("div");
    div.className = `turn ${{turn.agent}} ${{turn.kind}}`;
    const tag = document.createElement("span");
    tag.className = "tag";
    tag.textContent = `${{turn.agent}} ${{turn.kind}} · ${{turn.tokens}} tok` +
      (turn.score === null ? "" : ` · S=${{turn.score.toFixed(2)}}`);
    div.append(tag, turn.text);
    if (turn.kind !== "summary") {{ segment.push(div); continue; }}
    const fold = document.createElement("details");
    fold.className = "segment";
    const head = document.createElement("summary");  // what stays in the context: shown; the step: on a click
    const note = document.createElement("span");
    note.className = "fold";
    note.textContent = `step of ${{segment.length}} turns, folded: `;
    head.append(note, div);
    fold.append(head, ...segment);
    viewer.append(fold);
    segment = [];
  }}
  viewer.append(...segment);
}}
pick.addEventListener("change", () => show(pick.value));
if (items.length) show(0);
document.body.dataset.ready = "yes";
</script></body></html>
"""


def compare(a: str | Path, b: str | Path) -> str:
    """Side by side: pass@1 and tokens of every benchmark × mode in both runs, with B - A and its standard error."""
    from longshort.eval.modes import mode_label

    runs = [json.loads((Path(r) / "summary.json").read_text())["results"] for r in (a, b)]
    head = "| benchmark | mode | pass@1 A | pass@1 B | B − A | tokens A | tokens B | B − A |"
    lines = [f"A = {a}, B = {b}", "", head, "|" + "---|" * 8]
    for benchmark, modes in runs[0].items():
        for mode, ra in modes.items():
            rb = runs[1].get(benchmark, {}).get(mode)
            if rb is None:
                continue
            se = math.sqrt(ra["pass@1_se"] ** 2 + rb["pass@1_se"] ** 2)
            lines.append(f"| {benchmark} | {mode_label(mode)} | {ra['pass@1']:.1%} | {rb['pass@1']:.1%} | "
                         f"{rb['pass@1'] - ra['pass@1']:+.1%} ± {se:.1%} | {ra['tokens']:.1f} | {rb['tokens']:.1f} | "
                         f"{rb['tokens'] - ra['tokens']:+.1f} |")
    if len(lines) == 4:
        lines.append("(no benchmark × mode in common)")
    return "\n".join(lines)
