"""Regression tests of the generation hardening: actions, corpora as declared, refused levels."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs  # noqa: F401  (registers the ids)
from envs.generation.corpus import load_corpus
from envs.generation.task import TextLevel

LATIN1_DOCS = [
    "Caf\xe9 au lait, s'il vous pla\xeet.",
    "Na\xefve r\xe9sum\xe9 of the d\xe9j\xe0 vu.",
    "\xa1Ol\xe9!",
]


@pytest.mark.parametrize("action", [0.5, 65.0, True, -1, 256, "a", None, np.float32(1)])
def test_text_quality_refuses_actions_that_are_not_a_byte(action):
    env = gym.make("mindgym/TextQuality-v0")
    env.reset(seed=0)
    written = env.unwrapped.bytes_written
    with pytest.raises(ValueError, match=r"Action must be an int in \[0, 255\]"):
        env.step(action)
    assert env.unwrapped.bytes_written == written  # nothing was written (0.5 was byte 0)
    env.step(np.int64(65))
    assert env.unwrapped.bytes_written == written + 1


@pytest.mark.parametrize("seed", [-5, 2**64, 0.5, True])
def test_bad_seeds_name_the_seed_rule(seed):
    env = gym.make("mindgym/TextQuality-v0")
    with pytest.raises(ValueError, match="seed must be None or an int"):
        env.reset(seed=seed)
    env.reset(seed=np.int32(4))


def test_an_empty_corpus_path_is_refused_not_the_current_folder():
    for source in ("", "  "):
        with pytest.raises(ValueError, match="Corpus path is empty"):
            load_corpus(source)


def test_binary_corpus_files_are_refused(tmp_path):
    path = tmp_path / "weights.txt"
    path.write_bytes(bytes(range(256)) * 8)
    for encoding in ("utf-8", "latin-1"):
        with pytest.raises(ValueError, match="looks binary"):
            load_corpus(path, encoding=encoding)
    no_nul = tmp_path / "controls.txt"
    no_nul.write_bytes(b"text\x01\x02\x03\x04 more\x05\x06\x07\x08\n\ntwo\n\nthree")
    with pytest.raises(ValueError, match="looks binary"):
        load_corpus(no_nul)


def test_latin1_text_is_decoded_as_declared(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("\n\n".join(LATIN1_DOCS).encode("latin-1"))
    with pytest.raises(ValueError, match=r"not valid utf-8 text .* encoding='latin-1'"):
        load_corpus(path)
    corpus = load_corpus(path, encoding="latin-1")
    assert sorted(corpus.train + corpus.validation + corpus.test) == sorted(LATIN1_DOCS)
    assert "\ufffd" not in corpus.text("train")
    folder = tmp_path / "docs"
    folder.mkdir()
    for i, doc in enumerate(LATIN1_DOCS):
        (folder / f"{i}.txt").write_bytes(doc.encode("latin-1"))
    from_folder = load_corpus(folder, encoding="latin-1")
    assert sorted(from_folder.train + from_folder.validation + from_folder.test) == sorted(LATIN1_DOCS)
    with pytest.raises(ValueError, match="Unknown corpus encoding"):
        load_corpus(path, encoding="no-such-codec")


def test_a_level_too_long_for_the_corpus_changes_nothing():
    vec = gym.make_vec("mindgym/TextQuality-v0", 2, vectorization_mode="vector_entry_point", device="cpu")
    base = vec.unwrapped
    ladder, prompts = len(base.task.ladder), base.prompt_lengths.clone()
    with pytest.raises(ValueError, match="too few"):
        base.set_level(TextLevel("endless", 16, 10**8))
    assert len(base.task.ladder) == ladder and torch.equal(base.prompt_lengths, prompts)
    vec.reset(seed=0)
    vec.step(np.full(2, 65, dtype=np.int64))
    base.set_level(TextLevel("custom", 8, 8))  # a level that fits still joins
    assert len(base.task.ladder) == ladder + 1


def test_text_levels_refuse_bools():
    with pytest.raises(ValueError, match="positive int"):
        TextLevel("b", True, 8)
