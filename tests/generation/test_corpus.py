"""Corpus loading and splitting: embedded default, local files and folders, datasets-like objects."""

import pytest

from envs.generation.corpus import corpus_from_hf, load_corpus, split_documents


def test_embedded_corpus_splits_are_disjoint_nonempty_and_deterministic():
    a, b = load_corpus(), load_corpus()
    assert a.train == b.train and a.validation == b.validation and a.test == b.test
    splits = [set(a.train), set(a.validation), set(a.test)]
    assert all(splits)
    assert not (splits[0] & splits[1] or splits[0] & splits[2] or splits[1] & splits[2])
    total = sum(a.num_bytes(s) for s in ("train", "validation", "test"))
    assert total > 400_000
    assert 0.7 < a.num_bytes("train") / total < 0.9
    assert a.text("validation") == "\n\n".join(a.validation)


def test_split_does_not_depend_on_document_order():
    docs = [f"document number {i} " * 5 for i in range(40)]
    forward, backward = split_documents(docs), split_documents(list(reversed(docs)))
    assert forward.validation == backward.validation and forward.test == backward.test


def test_local_file_and_folder(tmp_path):
    file = tmp_path / "prose.txt"
    file.write_text("first paragraph.\n\nsecond paragraph.\n\nthird paragraph.\n\nfourth one.\n")
    corpus = load_corpus(file)
    assert sorted(corpus.train + corpus.validation + corpus.test) == sorted(
        ["first paragraph.", "second paragraph.", "third paragraph.", "fourth one."]
    )
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(5):
        (folder / f"{i}.txt").write_text(f"text of file {i}")
    (folder / "skip.bin").write_bytes(b"\x00\x01")
    corpus = load_corpus(folder)
    assert len(corpus.train + corpus.validation + corpus.test) == 5


def test_bad_sources_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_corpus(tmp_path / "missing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n   \n")
    with pytest.raises(ValueError, match="at least 3"):
        load_corpus(empty)
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ValueError, match="no files ending"):
        load_corpus(tmp_path / "nothing")
    with pytest.raises(TypeError, match="str or a pathlib"):
        load_corpus(42)
    with pytest.raises(ValueError, match="not both"):
        load_corpus(empty, hf_dataset="wikitext")
    with pytest.raises(ValueError, match="validation_fraction"):
        split_documents(["a", "b", "c"], validation_fraction=0.7)


def test_datasets_like_objects_keep_their_own_splits_or_get_split():
    rows = {s: [{"text": f"{s} row {i}"} for i in range(3)] for s in ("train", "validation", "test")}
    corpus = corpus_from_hf(rows, name="toy")
    assert corpus.validation == ["validation row 0", "validation row 1", "validation row 2"]
    flat = [{"story": f"story {i} " * 3} for i in range(10)]
    corpus = corpus_from_hf(flat, text_field="story", max_documents=6)
    assert len(corpus.train + corpus.validation + corpus.test) == 6
    with pytest.raises(ValueError, match="text_field"):
        corpus_from_hf(flat)


def test_hugging_face_loader_reads_a_local_text_file_offline(tmp_path):
    pytest.importorskip("datasets")
    data = tmp_path / "stories.txt"
    data.write_text("".join(f"Once upon a time there was story number {i}.\n" for i in range(30)))
    corpus = load_corpus(
        hf_dataset="text", data_files={"train": str(data)}, cache_dir=str(tmp_path / "hf-cache")
    )
    assert corpus.name == "hf:text"
    documents = corpus.train + corpus.validation + corpus.test
    assert len(documents) == 30 and all(d.startswith("Once upon a time") for d in documents)
    assert corpus.validation and corpus.test
