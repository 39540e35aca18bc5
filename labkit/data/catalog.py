"""The datasets labkit knows, pinned to a commit and a sha256 each.

Adding a dataset = one :func:`register` call: key, source, licence, files (or a Hugging Face
name) and a parser. Nothing here holds the data itself.
"""

from __future__ import annotations

from labkit.data import parsers
from labkit.data.hf import parse_hf
from labkit.data.registry import DataFile, Dataset, manifest_files, register

GH = "https://raw.githubusercontent.com/"

MQP = register(
    Dataset(
        key="mqp",
        description="Curai Medical Question Pairs: 3,048 pairs (1,524 similar / 1,524 different) written by 11 doctors",
        licence="none stated by the authors (research use)",
        source="curai/medical-question-pair-dataset@6c7f7fd7a53cedc6fec105c0c6cb78f2e9a82cd1:mqp.csv",
        files=(
            DataFile(
                "mqp.csv",
                GH + "curai/medical-question-pair-dataset/6c7f7fd7a53cedc6fec105c0c6cb78f2e9a82cd1/mqp.csv",
                "94ecd609a9ca9350e1cff2438aa55a034762f01c1a68732aaae3e4be7b03cf57",
            ),
        ),
        parser=parsers.parse_pairs_csv,
        citation="McCreery et al. 2020, arXiv 2008.13546",
    )
)

TINYSHAKESPEARE = register(
    Dataset(
        key="tinyshakespeare",
        description="Tiny Shakespeare: about 1.1 M characters of plays, one text file",
        licence="public domain text",
        source="karpathy/char-rnn@6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e:data/tinyshakespeare/input.txt",
        files=(
            DataFile(
                "input.txt",
                GH + "karpathy/char-rnn/6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e/data/tinyshakespeare/input.txt",
                "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
            ),
        ),
        parser=parsers.parse_text,
    )
)

CHINCHILLA = register(
    Dataset(
        key="chinchilla",
        description="245 (model size, training FLOP, loss) points read off Chinchilla's Figure 4 "
        "by Epoch AI; tokens D = C / (6N)",
        licence="figure data extracted from Hoffmann et al. 2022, Fig. 4",
        source="epoch-research/analyzing-chinchilla@92258837425e1b5f2851d624287f0120583a3d0e:"
        "data/svg_extracted_data.csv",
        files=(
            DataFile(
                "svg_extracted_data.csv",
                GH + "epoch-research/analyzing-chinchilla/"
                "92258837425e1b5f2851d624287f0120583a3d0e/data/svg_extracted_data.csv",
                "193478df4e90f040016431996c45682659306840ecdadf83cfb9cd5ca0aa1b30",
            ),
        ),
        parser=parsers.parse_chinchilla,
        citation="Besiroglu et al. 2024, arXiv 2404.10102",
    )
)

QMSUM = register(
    Dataset(
        key="qmsum",
        description="QMSum: 232 meetings (162/35/35 train/val/test), general and specific "
        "query-summary pairs, transcripts of about 9k words",
        licence="MIT (AMI/ICSI transcripts CC BY 4.0)",
        source="Yale-LILY/QMSum@83d7768c1f2b4dfeb091385d3dc7e239b8e5bb7e:data/ALL/{train,val,test}/",
        files=manifest_files(
            "qmsum.sha256",
            GH + "Yale-LILY/QMSum/83d7768c1f2b4dfeb091385d3dc7e239b8e5bb7e/data/ALL/",
        ),
        parser=parsers.parse_qmsum,
        listing_sha256="984f903b18fd956125e1409ab2776df3874240b54895d53d0707fbb1f166ab12",
        user_files="*/*.json",
        citation="Zhong et al. 2021, NAACL",
    )
)

# Hugging Face datasets the studies use when online (or from a mirror folder of data files).
for key, name, config, split, description, licence in [
    (
        "biosses",
        "mteb/biosses-sts",
        None,
        "test",
        "BIOSSES: 100 biomedical sentence pairs scored 0-4 by 5 experts",
        "GPL-3.0 (per HF cards)",
    ),
    (
        "openbookqa",
        "allenai/openbookqa",
        "main",
        "test",
        "OpenBookQA: 4-way multiple-choice science questions",
        "Apache-2.0",
    ),
    (
        "piqa",
        "ybisk/piqa",
        None,
        "validation",
        "PIQA: physical commonsense, 2 solutions per goal",
        "AFL-3.0",
    ),
    (
        "boolq",
        "google/boolq",
        None,
        "validation",
        "BoolQ: yes/no questions about a Wikipedia passage",
        "CC-BY-SA-3.0",
    ),
]:
    register(
        Dataset(
            key=key,
            description=description,
            licence=licence,
            source=f"huggingface.co/datasets/{name}",
            parser=parse_hf,
            hf_name=name,
            hf_config=config,
            hf_split=split,
        )
    )
