"""jsonl prompt/response corpora, and Hugging Face datasets chosen from the runner config (offline)."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from envs.generation.corpus import corpus_from_config, documents_from_path, load_corpus
from runners.generation import build_task
from tests.runners.helpers import compose_config


def write_pairs(path, count: int = 40) -> list[dict]:
    rows = [
        {"prompt": f"Question {i}: what does the echo say?", "response": f"The echo says number {i} twice."}
        for i in range(count)
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    return rows


def test_a_jsonl_file_gives_one_prompt_then_response_document_per_line(tmp_path):
    rows = write_pairs(tmp_path / "pairs.jsonl")
    documents = documents_from_path(tmp_path / "pairs.jsonl")
    assert documents == [f"{r['prompt']}\n{r['response']}" for r in rows]
    (tmp_path / "notes.txt").write_text("A plain text file.", encoding="utf-8")
    (tmp_path / "more.jsonl").write_text('{"text": "a row with text only"}\n', encoding="utf-8")
    folder = documents_from_path(tmp_path)
    assert "a row with text only" in folder and "A plain text file." in folder and len(folder) == 42


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"prompt": "only a prompt"}', r"needs 'prompt' and 'response'.*found \['prompt'\]"),
        ("{oops", "line 2"),
    ],
)
def test_bad_jsonl_rows_name_the_file_line_and_fix(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "fine"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        documents_from_path(path)


def test_the_runner_reads_a_local_jsonl_corpus(tmp_path):
    write_pairs(tmp_path / "pairs.jsonl")
    cfg = compose_config("generation", [f"task.corpus={tmp_path / 'pairs.jsonl'}"])
    task = build_task(cfg)
    assert "The echo says number" in task.corpus.text("train")


def test_a_hugging_face_dataset_is_chosen_from_the_runner_config(tmp_path, monkeypatch):
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))  # an empty cache: nothing to find online
    rows = write_pairs(tmp_path / "pairs.jsonl")
    overrides = [
        "task.corpus=hf:json",
        "task.text_field=[prompt,response]",
        f"+task.hf_kwargs.data_files={tmp_path / 'pairs.jsonl'}",
    ]
    cfg = compose_config("generation", overrides)
    corpus = corpus_from_config(OmegaConf.to_container(cfg.task))
    assert corpus.name == "hf:json"
    everything = [*corpus.train, *corpus.validation, *corpus.test]
    assert sorted(everything) == sorted(f"{r['prompt']}\n{r['response']}" for r in rows)
    with pytest.raises(ValueError, match=r"task\.text_field"):
        bad = compose_config("generation", [*overrides[:1], overrides[2], "task.text_field=body"])
        corpus_from_config(OmegaConf.to_container(bad.task))
    assert load_corpus().name.startswith("embedded")  # the default still needs nothing
