from setuptools import find_packages, setup

setup(
    name="fairseq-difformer",
    version="0.1.0",
    description="Difformer (embedding-space text diffusion) as a fairseq plugin",
    long_description=(
        "Difformer (Gao et al., NAACL 2024), embedding-space text diffusion, as a fairseq plugin: "
        "fairseq-train --user-dir $(difformer-user-dir) --task difformer, then fairseq-generate. "
        "Includes AR-initialised training (--init-from-ar), distillation, AR reranking, DDPM / DDIM / "
        "DPM-Solver++ decoding, int8 CPU decoding, the console tools and DifFormer / DifFeed heads. "
        "See README.md in the repository."
    ),
    long_description_content_type="text/plain",
    packages=find_packages(include=["difformer_core", "difformer_core.*", "fairseq_difformer", "fairseq_difformer.*",
                                    "difformer_cli"]),
    python_requires=">=3.9",
    # torch and fairseq (fairseq-fixed 0.12.3.1) are installed by scripts/install.sh: listing
    # them here would let pip replace a user's GPU torch or pull a CUDA build and torchaudio.
    install_requires=[
        "hydra-core==1.3.2",
        "omegaconf==2.3.0",
        "numpy",
        "sacrebleu>=2.3",
        "sacremoses",
        "subword-nmt",
        "rouge-score",
    ],
    extras_require={
        "tensorboard": ["tensorboardX>=2.6"],
        "viz": ["matplotlib>=3.5"],  # difformer-trajectory's PNG and GIF (pillow comes with it)
        # the AR model's roles (distillation, reranking, the AR baseline) on CTranslate2
        "ctranslate2": ["ctranslate2>=4.5"],
        # the Difformer's decoding on ONNX Runtime (export: onnx; serving: onnxruntime)
        "engine": ["onnxruntime>=1.20", "onnx>=1.16"],
    },
    entry_points={
        "console_scripts": [
            "difformer-user-dir=difformer_cli:print_user_dir",
            "difformer-prepare=difformer_cli.prepare:main",
            "difformer-prepare-text=difformer_cli.prepare_text:main",
            "difformer-distill=difformer_cli.distill:main",
            "difformer-average-checkpoints=difformer_cli.average_checkpoints:main",
            "difformer-score=difformer_cli.score:main",
            "difformer-convert-checkpoint=difformer_cli.convert_checkpoint:main",
            "difformer-trajectory=difformer_cli.trajectory:main",
            "difformer-translate=difformer_cli.translate:main",
        ]
    },
)
