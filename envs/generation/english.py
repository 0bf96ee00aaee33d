"""English prose that ships with Python and the packages MindGym installs, grouped into named domains.

Nothing is downloaded: every domain is harvested from the running interpreter's installation. A docstring
domain reads the docstrings of a package's modules with ``ast`` (no import, so no package code runs); the
``licences`` domain reads the licence files of every installed distribution and CPython's own; the
``readmes`` domain reads the long descriptions (project READMEs) in the distributions' metadata.
``prose_paragraphs`` keeps paragraphs that read as English sentences and drops code, doctests, tables,
headings and parameter lists, reflowing each paragraph onto one line.

Domains are assigned to one of three disjoint roles, so nothing is fitted or calibrated on the text that
evaluates it:

- ``JUDGE_DOMAINS``: the n-gram judge is fitted on these (with the embedded CPython docs' training split);
- ``CALIBRATION_DOMAINS``: the reward's bands and success threshold are calibrated on these;
- ``EVALUATION_DOMAINS``: ``bench/judge_quality.py`` measures the judge on these by default.

Every package named here is installed with MindGym's own dependencies (torch brings sympy, networkx and
jinja2; tensorboard brings werkzeug and markdown), so each domain exists on every install; what a domain
holds depends on the installed versions, and ``english_fingerprint`` keys every cache by them.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.metadata
import importlib.util
import re
import sys
import sysconfig
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

HARVEST_VERSION = 1
MIN_WORDS = 8  # a prose paragraph has at least this many words
MIN_DOCUMENT_CHARS = 200  # a document (one module's prose, one licence, one README) at least this long


@dataclass(frozen=True)
class Domain:
    """A named source of English prose: what it is, its licence, and the packages (or files) it reads."""

    name: str
    description: str
    licence: str
    packages: tuple[str, ...] = ()
    kind: str = "docstrings"  # "docstrings", "licences", "readmes" or "stdlib"


DOMAINS: dict[str, Domain] = {
    d.name: d
    for d in (
        Domain("stdlib", "docstrings of CPython's standard library (tests and idlelib excluded)", "PSF-2.0",
               kind="stdlib"),
        Domain("numpy", "numpy docstrings: arrays, numerical computing", "BSD-3-Clause", ("numpy",)),
        Domain("torch", "torch docstrings: tensors, deep learning", "BSD-3-Clause", ("torch",)),
        Domain("matplotlib", "matplotlib docstrings: plotting", "matplotlib licence (PSF-based)",
               ("matplotlib",)),
        Domain("rl", "gymnasium and Stable-Baselines3 docstrings: reinforcement learning", "MIT",
               ("gymnasium", "stable_baselines3", "sb3_contrib")),
        Domain("web", "werkzeug, jinja2 and markdown docstrings: web servers, templates, markup",
               "BSD-3-Clause", ("werkzeug", "jinja2", "markdown")),
        Domain("sympy", "sympy and mpmath docstrings: symbolic mathematics", "BSD-3-Clause",
               ("sympy", "mpmath")),
        Domain("networkx", "networkx docstrings: graph theory and algorithms", "BSD-3-Clause", ("networkx",)),
        Domain("licences", "licence texts of every installed distribution and of CPython (legal English)",
               "each licence's own terms (redistribution of the texts is permitted)", kind="licences"),
        Domain("readmes", "long descriptions (READMEs) in installed distributions' metadata",
               "each distribution's licence", kind="readmes"),
    )
}
JUDGE_DOMAINS = ("stdlib", "numpy", "matplotlib")
CALIBRATION_DOMAINS = ("rl", "web")
EVALUATION_DOMAINS = ("sympy", "networkx", "licences", "readmes")

_CODE_LINE = re.compile(r"^\s*(>>>|\.\.\.|\$ |\.\. |::|[|+]|-{3,}|={3,}|~{3,}|\^{3,}|#|```|\w+ : )")
_SENTENCE_END = re.compile(r"[.!?:)\"']$")


def prose_paragraphs(text: str) -> list[str]:
    """The paragraphs of ``text`` that read as English prose, each reflowed onto one line.

    A paragraph (lines between blank lines) is kept when no line looks like code, a doctest, a heading
    underline, a table, a directive or a ``name : type`` parameter line; when it is not indented deeper
    than its first line (a code block); when it has at least ``MIN_WORDS`` words, ends like a sentence,
    and at least 85% of its characters are letters or spaces.
    """
    kept = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        lines = [line for line in block.split("\n") if line.strip()]
        if not lines or any(_CODE_LINE.match(line) for line in lines):
            continue
        indent = len(lines[0]) - len(lines[0].lstrip())
        if any(len(line) - len(line.lstrip()) > indent + 4 for line in lines[1:]):
            continue
        paragraph = " ".join(line.strip() for line in lines)
        words = paragraph.split()
        if len(words) < MIN_WORDS or not _SENTENCE_END.search(paragraph):
            continue
        letters = sum(ch.isalpha() or ch == " " for ch in paragraph)
        if letters < 0.85 * len(paragraph):
            continue
        kept.append(paragraph)
    return kept


def _document(paragraphs: Iterable[str]) -> str | None:
    text = "\n\n".join(paragraphs)
    return text if len(text) >= MIN_DOCUMENT_CHARS else None


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(spec.origin).parent if spec.origin else None


def _module_docstrings(path: Path) -> list[str]:
    try:
        tree = ast.parse(path.read_bytes())
    except (SyntaxError, ValueError, OSError):
        return []
    docs = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node)
            if doc:
                docs.append(doc)
    return docs


_SKIPPED_PARTS = {"tests", "test", "testing", "_vendor", "vendored", "idlelib", "lib2to3", "site-packages"}


def _python_files(root: Path) -> list[Path]:
    return sorted(
        p for p in root.rglob("*.py") if not _SKIPPED_PARTS & set(p.relative_to(root).parts[:-1])
    )


def docstring_documents(roots: Iterable[Path]) -> list[str]:
    """One document per module under ``roots``: the prose paragraphs of its docstrings."""
    documents = []
    for root in roots:
        files = [root] if root.is_file() else _python_files(root)
        for path in files:
            doc = _document(p for d in _module_docstrings(path) for p in prose_paragraphs(d))
            if doc:
                documents.append(doc)
    return documents


def licence_documents() -> list[str]:
    """One document per distinct licence file of the installed distributions, plus CPython's LICENSE."""
    files = [Path(sysconfig.get_paths()["stdlib"]) / "LICENSE.txt"]
    for dist in _distributions():
        for entry in dist.files or ():
            name = entry.name.upper()
            if name.startswith(("LICEN", "COPYING", "NOTICE")) and "_vendor" not in str(entry):
                files.append(Path(dist.locate_file(entry)))
    seen, documents = set(), []
    for path in files:
        try:
            text = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        doc = _document(prose_paragraphs(text))
        if doc and doc not in seen:
            seen.add(doc)
            documents.append(doc)
    return documents


def readme_documents() -> list[str]:
    """One document per installed distribution: the prose of its long description (its README)."""
    documents = []
    for dist in _distributions():
        if dist.metadata["Name"] and dist.metadata["Name"].lower() == "mindgym":
            continue  # the project's own README is not a held-out text
        body = dist.metadata.get_payload() or dist.metadata.get("Description") or ""
        doc = _document(prose_paragraphs(str(body)))
        if doc:
            documents.append(doc)
    return documents


def _distributions() -> list[importlib.metadata.Distribution]:
    by_name = {}
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").lower()
        if name and name not in by_name:
            by_name[name] = dist
    return [by_name[name] for name in sorted(by_name)]


def domain_documents(name: str) -> list[str]:
    """The documents of one domain (see ``DOMAINS``), harvested from the installation, in a stable order."""
    if name not in DOMAINS:
        raise ValueError(f"Unknown English domain {name!r}; the domains are {sorted(DOMAINS)}.")
    domain = DOMAINS[name]
    loaders: dict[str, Callable[[], list[str]]] = {
        "stdlib": lambda: docstring_documents([Path(sysconfig.get_paths()["stdlib"])]),
        "licences": licence_documents,
        "readmes": readme_documents,
    }
    if domain.kind in loaders:
        return loaders[domain.kind]()
    roots = [root for root in (_package_dir(p) for p in domain.packages) if root is not None]
    if not roots:
        raise ValueError(f"English domain {name!r} needs one of {domain.packages} installed; none is.")
    return docstring_documents(roots)


def english_fingerprint(domains: Iterable[str]) -> str:
    return _fingerprint(tuple(sorted(set(domains))))


@functools.lru_cache(maxsize=16)
def _fingerprint(domains: tuple[str, ...]) -> str:
    """A short hash of what the domains' text depends on: the harvest version, Python's version and the
    versions of the distributions they read (all of them for licences and READMEs), without harvesting."""
    parts = [f"harvest-v{HARVEST_VERSION}", sys.version.split()[0]]
    providers = importlib.metadata.packages_distributions()
    versions = {(d.metadata["Name"] or "").lower(): d.version for d in _distributions()}
    for name in domains:
        domain = DOMAINS[name]
        parts.append(name)
        if domain.kind in ("licences", "readmes"):
            parts += [f"{dist}=={version}" for dist, version in sorted(versions.items())]
        for package in domain.packages:
            for dist in sorted(providers.get(package, [])):
                parts.append(f"{dist}=={versions.get(dist.lower(), '?')}")
    return hashlib.blake2b("\n".join(parts).encode(), digest_size=12).hexdigest()
