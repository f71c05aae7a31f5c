"""One distribution, ``longshort``; agents/, rl/, data/ and eval/ install as sub-packages of longshort."""
from setuptools import setup

setup(
    name="longshort",
    version="0.1.0",
    description="Long-thought and short-thought models reasoning together, with folding memory.",
    python_requires=">=3.10",
    packages=["longshort", "longshort.agents", "longshort.rl", "longshort.data", "longshort.eval"],
    package_dir={
        "longshort": "longshort",
        "longshort.agents": "agents",
        "longshort.rl": "rl",
        "longshort.data": "data",
        "longshort.eval": "eval",
    },
    install_requires=[
        "torch>=2.4",
        "transformers>=5.15",  # 5.15.0 is OpenRLHF 0.11.2's pin; the HF backend is tested on 5.15 and 5.24
        "tokenizers>=0.21",
        "safetensors",
        "datasets>=3.0",
        "ray[default]>=2.40",
        "math-verify>=0.9",  # the grader's cases (eval/grading_cases.py) are checked against 0.9
        "pydantic>=2.6",
        "pyyaml>=6.0",
        "tqdm>=4.66",
        "numpy>=1.26",
        "gguf>=0.10",
        "accelerate>=1.0",  # transformers needs it to load GGUF checkpoints
        "matplotlib>=3.8",  # report plots
        "tensorboard>=2.14",  # RL metrics
    ],
    extras_require={
        # GPU machines: vLLM pins torch 2.13.0; OpenRLHF needs flash-attn 2.8.3, which has no wheel on PyPI and is
        # built against that torch first (README, "Cluster recipe")
        "gpu": ["vllm==0.29.0"],
        "train": ["openrlhf==0.11.2", "deepspeed==0.19.6"],
        "dev": ["pytest>=8.0", "pytest-timeout>=2.3"],
    },
    entry_points={"console_scripts": ["longshort=longshort.cli:main"]},
)
