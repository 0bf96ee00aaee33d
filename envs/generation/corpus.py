"""Text corpora for the generation task and for needle filler text, split deterministically by document.

``load_corpus()`` with no source returns the embedded corpus: the English documentation prose that every
CPython install carries in ``pydoc_data.topics`` (about 465 KB, one document per topic), so everything
works offline. A local text file (documents separated by blank lines), a folder of text files (one
document per file) or a Hugging Face ``datasets`` corpus (optional extra, imported lazily) work too.

The split is by document and deterministic: documents are ordered by a content hash and the first ones go
to validation and test. It does not depend on the order files are listed in, on the platform or on a seed.
"""

from __future__ import annotations

import codecs
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPLITS = ("train", "validation", "test")
# A file with a larger share of C0 control characters (tab and line breaks aside) is binary, not text.
BINARY_CONTROL_SHARE = 0.01
_BINARY_CONTROLS = tuple(chr(c) for c in [*range(32), 127] if chr(c) not in "\t\n\r\f\v")
DOCUMENT_SEPARATOR = "\n\n"
DEFAULT_SUFFIXES = (".txt", ".md", ".rst", ".text", ".jsonl")
# A jsonl corpus: one JSON object per line; a document is these fields joined by a newline (prompt then
# response, as in the Echo seed's data), or the row's "text" when it has no prompt.
JSONL_FIELDS = ("prompt", "response")
MIN_DOCUMENTS = 3


@dataclass(frozen=True)
class Corpus:
    """Documents (str) of one corpus in three disjoint splits; ``name`` says where they came from."""

    name: str
    train: list[str]
    validation: list[str]
    test: list[str]
    _joined: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    def documents(self, split: str) -> list[str]:
        """The documents of ``split`` ('train', 'validation' or 'test')."""
        if split not in SPLITS:
            raise ValueError(f"Unknown corpus split {split!r}; use one of {list(SPLITS)}.")
        return getattr(self, split)

    def text(self, split: str = "train") -> str:
        """The documents of ``split`` joined by a blank line (cached: the corpus is immutable)."""
        if split not in self._joined:
            self._joined[split] = DOCUMENT_SEPARATOR.join(self.documents(split))
        return self._joined[split]

    def num_bytes(self, split: str = "train") -> int:
        """Size of ``text(split)`` in UTF-8 bytes (what the byte-level models see)."""
        return len(self.text(split).encode("utf-8"))

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={len(self.documents(s))} docs" for s in SPLITS)
        return f"Corpus({self.name!r}, {sizes})"


def split_documents(
    documents: Iterable[str],
    *,
    name: str = "corpus",
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> Corpus:
    """Split ``documents`` into train/validation/test by a content hash; the fractions are of characters.

    Documents are ordered by hash; validation takes them until it holds ``validation_fraction`` of the
    text, then test likewise, and train the rest (each split gets at least one document).

    Empty and whitespace-only documents are dropped; duplicates are kept once, so no text leaks from train
    into a held-out split.
    """
    for label, fraction in (("validation_fraction", validation_fraction), ("test_fraction", test_fraction)):
        if not 0.0 < fraction < 0.5:
            raise ValueError(f"{label} must lie in (0, 0.5), got {fraction!r}.")
    unique = {_digest(doc): doc for doc in (d.strip("\n") for d in documents) if doc.strip()}
    if len(unique) < MIN_DOCUMENTS:
        raise ValueError(
            f"Corpus {name!r} has {len(unique)} non-empty document(s); a train/validation/test split "
            f"needs at least {MIN_DOCUMENTS}. Separate documents in a file by blank lines, or pass a folder "
            "of files."
        )
    ordered = [unique[key] for key in sorted(unique)]
    sizes = [len(doc) for doc in ordered]
    n_val = _take_share(sizes, 0, validation_fraction * sum(sizes))
    n_test = _take_share(sizes, n_val, test_fraction * sum(sizes))
    if n_val + n_test >= len(ordered):
        n_test = len(ordered) - n_val - 1
    return Corpus(
        name=name,
        validation=ordered[:n_val],
        test=ordered[n_val : n_val + n_test],
        train=ordered[n_val + n_test :],
    )


def _take_share(sizes: list[int], start: int, share: float) -> int:
    """How many documents from ``start`` on it takes to reach ``share`` characters (at least one)."""
    total, count = 0, 0
    for size in sizes[start:]:
        if count and total >= share:
            break
        total, count = total + size, count + 1
    return count


def embedded_documents() -> list[str]:
    """One document per topic of CPython's bundled ``pydoc_data.topics`` (English prose, no download)."""
    from pydoc_data.topics import topics

    return [topics[key] for key in sorted(topics)]


def documents_from_path(
    path: str | Path, suffixes: Sequence[str] = DEFAULT_SUFFIXES, encoding: str = "utf-8"
) -> list[str]:
    """Documents of a local text file (split on blank lines) or folder (one document per matching file).

    Files are decoded strictly with ``encoding``: text in another encoding, and binary files, are refused
    by name rather than read with replacement characters.
    """
    if not str(path).strip():
        raise ValueError(
            "Corpus path is empty (''); pass a text file or folder, or None for the embedded corpus."
        )
    _check_encoding(encoding)
    path = Path(path).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
        if not files:
            raise ValueError(
                f"Corpus folder {path} holds no files ending in {list(suffixes)}; add text files or pass "
                "suffixes=(...) with the endings your files use."
            )
        documents: list[str] = []
        for p in files:
            jsonl = p.suffix.lower() == ".jsonl"
            documents += _jsonl_documents(p, encoding) if jsonl else [_read_text(p, encoding)]
        return documents
    if path.is_file():
        if path.suffix.lower() == ".jsonl":
            return _jsonl_documents(path, encoding)
        return _read_text(path, encoding).replace("\r\n", "\n").split(DOCUMENT_SEPARATOR)
    raise ValueError(f"Corpus path {path} does not exist; pass an existing text file or folder, or None.")


def documents_from_hf(
    dataset: Any, text_field: str = "text", max_documents: int | None = None
) -> dict[str, list[str]] | list[str]:
    """Documents of a Hugging Face ``Dataset`` (a list) or ``DatasetDict`` (a dict of lists by split name).

    Works on any object that behaves like one: a mapping of split name to rows, or an iterable of rows
    that are mappings with ``text_field``. ``max_documents`` caps how many rows each split reads.
    """
    if isinstance(dataset, Mapping):
        return {
            str(split): documents_from_hf(rows, text_field, max_documents) for split, rows in dataset.items()
        }
    documents = []
    for i, row in enumerate(dataset):
        if max_documents is not None and i >= max_documents:
            break
        fields = [f.strip() for f in text_field.split(",")]  # "prompt,response": joined by a newline
        if not isinstance(row, Mapping) or any(f not in row for f in fields):
            found = sorted(row) if isinstance(row, Mapping) else type(row).__name__
            raise ValueError(
                f"Dataset rows have no field {text_field!r} (found {found}); pass text_field=... "
                "(task.text_field=... in the runner; [prompt,response] joins two fields)."
            )
        documents.append("\n".join(str(row[f]) for f in fields))
    return documents


def corpus_from_hf(
    dataset: Any, *, name: str = "hf", text_field: str = "text", max_documents: int | None = None
) -> Corpus:
    """A Corpus from a loaded ``datasets`` object; a DatasetDict's own train/validation/test splits stay."""
    docs = documents_from_hf(dataset, text_field, max_documents)
    if isinstance(docs, dict):
        if set(SPLITS) <= set(docs):
            clean = {s: [d.strip("\n") for d in docs[s] if d.strip()] for s in SPLITS}
            empty = [s for s in SPLITS if not clean[s]]
            if empty:
                raise ValueError(f"Dataset {name!r} has empty split(s) {empty}; every split needs text.")
            return Corpus(name=name, **clean)
        docs = [doc for split in sorted(docs) for doc in docs[split]]
    return split_documents(docs, name=name)


def load_hf_corpus(
    hf_dataset: str,
    hf_config: str | None = None,
    *,
    text_field: str = "text",
    max_documents: int | None = None,
    **load_kwargs: Any,
) -> Corpus:
    """Load a Hugging Face ``datasets`` corpus (e.g. 'wikitext', 'roneneldan/TinyStories', or 'text' with
    ``data_files=...`` for local files) through ``datasets.load_dataset``.

    ``datasets`` reads its local cache; set ``HF_DATASETS_OFFLINE=1`` to make sure nothing is downloaded.
    """
    try:
        import datasets
    except ImportError as err:
        raise ImportError(
            "Loading a Hugging Face corpus needs the optional 'datasets' package: pip install 'mindgym[hf]'. "
            "load_corpus() without hf_dataset uses the embedded corpus and needs nothing extra."
        ) from err
    dataset = datasets.load_dataset(hf_dataset, hf_config, **load_kwargs)
    name = f"hf:{hf_dataset}" + (f"/{hf_config}" if hf_config else "")
    return corpus_from_hf(dataset, name=name, text_field=text_field, max_documents=max_documents)


def load_corpus(
    source: str | Path | None = None,
    *,
    hf_dataset: str | None = None,
    hf_config: str | None = None,
    text_field: str = "text",
    max_documents: int | None = None,
    suffixes: Sequence[str] = DEFAULT_SUFFIXES,
    encoding: str = "utf-8",
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    **hf_kwargs: Any,
) -> Corpus:
    """Load a corpus: the embedded one (no arguments), a local file or folder, or a Hugging Face dataset.

    Local files are decoded with ``encoding`` (e.g. ``"latin-1"``); one that does not decode, or that
    holds binary data, is refused with its name and the fix.

    >>> corpus = load_corpus()
    >>> len(corpus.text("train")) > 300_000
    True
    """
    if source is not None and hf_dataset is not None:
        raise ValueError("Pass either a local source path or hf_dataset=..., not both.")
    if hf_dataset is not None:
        return load_hf_corpus(
            hf_dataset, hf_config, text_field=text_field, max_documents=max_documents, **hf_kwargs
        )
    if hf_kwargs:
        raise ValueError(
            f"Unknown load_corpus argument(s) {sorted(hf_kwargs)}; they only apply to hf_dataset."
        )
    if source is None:
        docs, name = embedded_documents(), "embedded:pydoc_data.topics"
    elif isinstance(source, str | Path):
        docs = documents_from_path(source, tuple(s.lower() for s in suffixes), encoding)
        name = str(source)
    else:
        raise TypeError(
            f"Corpus source must be None, a str or a pathlib.Path, got {type(source).__name__}; "
            "for a loaded datasets object use envs.generation.corpus.corpus_from_hf."
        )
    if max_documents is not None:
        docs = docs[:max_documents]
    return split_documents(
        docs, name=name, validation_fraction=validation_fraction, test_fraction=test_fraction
    )


_DEFAULT: Corpus | None = None


HF_PREFIX = "hf:"


def corpus_from_config(task: Mapping[str, Any]) -> Corpus:
    """The corpus a task config names in ``corpus``: "builtin", a local file or folder (text or jsonl), or
    ``hf:<dataset>`` loaded through ``datasets`` (``hf_config``, ``text_field`` (a list is joined with
    commas) and ``hf_kwargs`` such as ``data_files``; it reads its local cache, so set
    HF_DATASETS_OFFLINE=1 to be sure nothing downloads)."""
    source = str(task["corpus"])
    if not source.startswith(HF_PREFIX):
        return load_corpus(None if source == "builtin" else source)
    name = source[len(HF_PREFIX) :]
    if not name:
        raise ValueError("task.corpus=hf: needs a dataset name, e.g. task.corpus=hf:roneneldan/TinyStories.")
    field = task.get("text_field") or "text"
    text_field = ",".join(map(str, field)) if isinstance(field, list | tuple) else str(field)
    kwargs = dict(task.get("hf_kwargs") or {})
    return load_corpus(hf_dataset=name, hf_config=task.get("hf_config"), text_field=text_field, **kwargs)


def default_corpus() -> Corpus:
    """The embedded corpus, built once per process."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = load_corpus()
    return _DEFAULT


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def _check_encoding(encoding: Any) -> None:
    """Refuse an encoding name Python does not know, before any file is read."""
    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError):
        raise ValueError(
            f"Unknown corpus encoding {encoding!r}; pass a Python codec name such as 'utf-8' or 'latin-1'."
        ) from None


def jsonl_document(row: Any, where: str, fields: Sequence[str] = JSONL_FIELDS) -> str:
    """One document from a jsonl row: ``fields`` joined by a newline, or its ``text``."""
    if isinstance(row, Mapping) and all(f in row for f in fields):
        return "\n".join(str(row[f]) for f in fields)
    if isinstance(row, Mapping) and "text" in row:
        return str(row["text"])
    found = sorted(row) if isinstance(row, Mapping) else type(row).__name__
    raise ValueError(
        f"{where}: a jsonl corpus row needs {' and '.join(repr(f) for f in fields)} (joined into one "
        f"document) or 'text'; found {found}."
    )


def _jsonl_documents(path: Path, encoding: str = "utf-8") -> list[str]:
    """The documents of a jsonl file: one per non-empty line (see ``jsonl_document``)."""
    documents = []
    for number, line in enumerate(_read_text(path, encoding).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(
                f"{path}, line {number}: not valid JSON ({err.msg}); a jsonl file holds one object a line."
            ) from None
        documents.append(jsonl_document(row, f"{path}, line {number}"))
    return documents


def _read_text(path: Path, encoding: str = "utf-8") -> str:
    """The text of ``path`` decoded strictly with ``encoding``; binary or mis-encoded files are refused."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ValueError(
            f"Cannot read corpus file {path}: {err.strerror}; check the path and permissions."
        ) from err
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as err:
        if b"\x00" in data:
            raise ValueError(
                f"Corpus file {path} looks binary (it holds NUL bytes and is not valid {encoding} text); "
                "a corpus holds text. Remove it, or narrow suffixes=."
            ) from None
        raise ValueError(
            f"Corpus file {path} is not valid {encoding} text (at byte {err.start}: "
            f"{data[err.start : err.start + 4]!r}); "
            "pass encoding= with the file's encoding (e.g. encoding='latin-1'), or convert it to UTF-8."
        ) from None
    controls = sum(text.count(ch) for ch in _BINARY_CONTROLS)
    if "\x00" in text or controls > BINARY_CONTROL_SHARE * len(text):
        raise ValueError(
            f"Corpus file {path} looks binary ({controls} control characters in {len(text)}, NUL bytes: "
            f"{'yes' if chr(0) in text else 'no'}); a corpus holds text. Remove it, or narrow suffixes=."
        )
    return text
