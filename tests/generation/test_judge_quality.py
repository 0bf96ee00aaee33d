"""bench.judge_quality and the English harvest: the degraded variants are what they claim, the prose filter
keeps sentences and drops code, and the benchmark runs end to end on a user's text file."""

import re

import torch

from bench.judge_quality import VARIANTS, main, repeat_phrase, shuffle_words, variants_of, windows_of
from envs.generation.english import (
    CALIBRATION_DOMAINS,
    DOMAINS,
    EVALUATION_DOMAINS,
    JUDGE_DOMAINS,
    prose_paragraphs,
)

PROSE = (
    "The judge reads every byte the agent writes and says how likely an English reader would find it.\n"
    "It was fitted on documentation and is measured on other text."
)


def test_prose_filter_keeps_sentences_and_drops_code_tables_and_parameters():
    text = "\n\n".join(
        [
            PROSE,
            ">>> import torch\n>>> torch.zeros(3)",
            "Parameters\n----------",
            "x : int\n    The number of things to count in the list.",
            "| a | b |\n| 1 | 2 |",
            "Short line.",
            "    def f(x):\n            return x + 1 if x else None and more words here.",
        ]
    )
    assert prose_paragraphs(text) == [PROSE.replace("\n", " ")]


def test_domain_roles_are_disjoint_and_named():
    roles = [set(JUDGE_DOMAINS), set(CALIBRATION_DOMAINS), set(EVALUATION_DOMAINS)]
    assert all(not (a & b) for i, a in enumerate(roles) for b in roles[i + 1 :])
    assert set().union(*roles) <= set(DOMAINS)
    assert all(DOMAINS[name].licence for name in DOMAINS)


def test_variants_keep_length_and_what_they_claim():
    text = (PROSE + " ") * 20
    windows = windows_of([text], prompt=16, window=128, max_windows=4)
    assert windows.shape == (4, 144)
    variants = variants_of(windows[:, 16:], seed=0)
    assert list(variants) == list(VARIANTS)
    real = variants["real text"]
    for name, texts in variants.items():
        assert texts.shape == real.shape and int(texts.min()) >= 0 and int(texts.max()) < 256, name
    for row, shuffled in zip(real, variants["words shuffled"]):
        a, b = bytes(row.tolist()), bytes(shuffled.tolist())
        assert sorted(a.split()) == sorted(b.split()) and re.sub(rb"\S", b"", a) == re.sub(rb"\S", b"", b)
    assert torch.equal(variants["bytes shuffled"].sort(dim=1).values, real.sort(dim=1).values)
    assert set(variants["random letters"].unique().tolist()) <= {32, *range(97, 123)}
    phrase = b"one two three four five six "
    assert repeat_phrase(phrase + b"seven eight") == (phrase * 2)[: len(phrase) + 11]
    assert shuffle_words(b"a  b\nc", torch.Generator().manual_seed(0)).count(b"  ") == 1


def test_benchmark_runs_on_a_text_file(tmp_path, capsys):
    path = tmp_path / "prose.txt"
    path.write_text("\n\n".join([PROSE] * 40))
    main(["--text", str(path), "--max-windows", "6", "--no-record"])
    out = capsys.readouterr().out
    for name in VARIANTS:
        assert f"| {name} |" in out
    assert "| " + str(path) + " | 6 |" in out
