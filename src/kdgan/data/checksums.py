"""SHA-256 checksums of the public dataset files this package reads, and functions that check them.

The values are those of the published files as listed in ``shared/data/SHA256SUMS`` (the gzipped
MNIST and Fashion-MNIST IDX files, the two CIFAR-10 JPEG zip archives, and the Mulan multi-label
ARFF and label-XML files). A file whose hash differs is corrupt, truncated, or another version:
:func:`verify_file` and :func:`verify_folder` raise :class:`~kdgan.errors.DataError` naming the
file, the expected and the found hash, and the fix.

Files are hashed in chunks (1 MiB by default), so memory use does not grow with the file size.
Only files with a published hash are checked: an IDX file the user decompressed (no ``.gz``), the
CIFAR-10 python batches, or files of other datasets are left alone (the loaders check their
structure).

The readers of MNIST, Fashion-MNIST, CIFAR-10 and the Mulan sets call :func:`verify_folder` on
the folder they found when the config sets ``data.verify: true`` (see :mod:`kdgan.data.location`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from kdgan.errors import DataError

CHUNK_SIZE = 1 << 20

# How a user who modified a copy on purpose skips the check.
SKIP_HINT = "set data.verify=false (the default) to skip the check"

# dataset -> {file name: sha256}, from shared/data/SHA256SUMS (facts about the public files)
SHA256: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
    "cifar10": {
        "cifar10-jpg-train.zip": "5de82d05893324bbb7d3e60e30798f995236e247eb9455a080c8ab82a97dde98",
        "cifar10-jpg-test.zip": "278df018a3180bb089f9178eba057f4c7bdd5ca474d81bf5c8af3b8bdb1b02b5",
    },
    "bibtex": {
        "bibtex-train.arff": "8dcc9de6e0b2cebaec8c1f4fac78431adeeb73cfd3ab879b530a66d366e59174",
        "bibtex-test.arff": "9b03329cde64d3f994bdf7fbbac3f3b10fe185c311cb9ae725475f59c7f3f922",
        "bibtex.arff": "a282a6d1fb3cdaf39bde3f81cd4e6079850a7a538a6bc44f8b4ed95dfe1e5014",
        "bibtex.xml": "08fe20013c1e75dcf1888c185f5187c95e76495b8518ce289b4d3afce38d1232",
    },
    "corel5k": {
        "Corel5k-train-sparse.arff": "19eb253c447144bea74ffa86b4731a56022addae2ba7d0aab72ad07fdc02e9b3",
        "Corel5k-test-sparse.arff": "e8f8e9cd052c43ba7bdfdf99d242f461fc8c2a03163466d921e576887b51d8a7",
        "Corel5k-sparse.arff": "12c06161d2367f919f6da912089a6c9180c115cfcefa37afacfdeb903930eb7e",
        "Corel5k.xml": "54ef6a6ccb7ca9b77524052b34b306d5d501661a5609b9d1cc7085b2b597679d",
    },
    "delicious": {
        "delicious-train.arff": "030186cdb542ebdd32052fcdbb1ebe30115b3a22518c1b4b198c45eb827aebe1",
        "delicious-test.arff": "2dfb01723a819914b0ca83361177ed413ce3f2169851d9f228d4692915d63944",
        "delicious.arff": "b944de0bca910050c11d97eed57d17b073110ea3646a587f3d15d127cf581aab",
        "delicious.xml": "4e0c0f93c7d86a39b9fca4aaefaa00e9428f2c80277732dfbf03ca48e2c14da2",
    },
    "emotions": {
        "emotions-train.arff": "bbe704106c79bb8fb99c1d1d2e9bde081d6a2daeb01f100862f11fd91a3c1f98",
        "emotions-test.arff": "f13d4b746b7b5c8eb484bd751d6ac463d4560dff998a93516a5c1fe35daf6c8f",
        "emotions.arff": "6f2f790047073d1293ac0872c0d55f2dc98b6177802fc96c6b66b309dfee1e4b",
        "emotions.xml": "dbce8e6ccbbb2fcbfd9e9edbb230d7ed12692c6e13f59fdbc0161fa9b6cf2dc0",
    },
    "enron": {
        "enron-train.arff": "2988cefc1cdf7a8004a20ef84615cc8fa1b5d7434c16687283b41454e2d9d194",
        "enron-test.arff": "2f3aad54a8f54caaab4ab01246fe9dd385ba944a2633028f52747b57eac5474e",
        "enron.arff": "d0889ef0576d4e7b5ec0df3b3e4760e476ac11a6e7d7ddeee4c4a34470dedf97",
        "enron.xml": "ed40c92d7f613eed51714912cab10dddc4ce456262137d8fef230d44c7f4457b",
    },
    "medical": {
        "medical-train.arff": "c764f45756ab1c553b8b4eaaf5605a5610a43bbbcf37492d0f1a12bf9c9e2244",
        "medical-test.arff": "6be472e75a6c0b0916187f343a398011b1b26f8f0ddc682c575312ad3532f6c4",
        "medical.arff": "ad0630a9a409ed0023c3bb56a0be7610b635c1ca185c6035e3b198b01167aac4",
        "medical.xml": "51fa9d5c09e48caff3f0a0c75db1c9aa85944f8e35451f3ad8bd56fc422286ce",
    },
    "scene": {
        "scene-train.arff": "b53ba93bdf412de922e3960389bcee24744fa3e872ce610511fc1d750888b64d",
        "scene-test.arff": "ea38d20296b3ff7e220f477a3b802a9bcb2d768881fe6ee163efbc97ea527a42",
        "scene.xml": "55d8b247b949ad5c52e5a73d8c6775ec6e5469ce9682465b45b333b68ee4bcc5",
    },
    "yeast": {
        "yeast-train.arff": "e759dc991ff54694a4ff9c4314f3be0d6fd2b1994a4b563f57e416394c6aebbd",
        "yeast-test.arff": "4aaac102bff9669a765bf0b378602e5cc8c3b181048282e2f003117b496d552a",
        "yeast.arff": "55c07a3b6ff885ae338fb6987a1d57f55572b29809922c2822c4885c61230dd7",
        "yeast.xml": "c3056cc26444b5158b1588d1b73bec9c45429e10f0957ad085903423cb81f247",
    },
}

def has_checksums(name: str) -> bool:
    """Whether dataset ``name``'s files have published checksums (``emotions-2view``: emotions')."""
    return name.lower().removesuffix("-2view") in SHA256


def _canonical(name: str) -> str:
    """The checksum table's key for a dataset name (``emotions-2view`` uses the emotions files)."""
    key = name.lower().removesuffix("-2view")
    if key not in SHA256:
        raise DataError(f"no published checksums for dataset {name!r}; known: {', '.join(SHA256)}")
    return key


def sha256_file(path: str | os.PathLike[str], chunk_size: int = CHUNK_SIZE) -> str:
    """The hex SHA-256 of a file, read ``chunk_size`` bytes at a time into one reused buffer."""
    digest = hashlib.sha256()
    buffer = bytearray(chunk_size)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            digest.update(view[:count])
    return digest.hexdigest()


def expected_sha256(path: str | os.PathLike[str], dataset: str | None = None) -> str | None:
    """The published hash of ``path``, looked up by file name (in ``dataset``'s table if given).

    MNIST and Fashion-MNIST use the same file names; without ``dataset``, the parent folder's name
    decides when it is one of them, and otherwise the name is ambiguous and None is returned."""
    path = Path(path)
    if dataset is not None:
        return SHA256[_canonical(dataset)].get(path.name)
    matches = {key: table[path.name] for key, table in SHA256.items() if path.name in table}
    if len(matches) == 1:
        return next(iter(matches.values()))
    folder = path.parent.name.lower()
    return matches.get(folder)


def verify_file(
    path: str | os.PathLike[str], expected: str | None = None, *, dataset: str | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> str:
    """Check that ``path`` has SHA-256 ``expected`` (by default the published hash of a known
    dataset file, see :func:`expected_sha256`); return the hash found.

    Raises DataError when the file is missing, when no expected hash is given or known, and when
    the hashes differ, naming the file, both hashes and the fix."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} not found: cannot verify its checksum; check the path or the data directory")
    if expected is None:
        expected = expected_sha256(path, dataset)
        if expected is None:
            raise DataError(
                f"no published SHA-256 for {path} (dataset {dataset or 'unknown'}); pass expected= the hash "
                "to compare with, or name the dataset with dataset="
            )
    expected = expected.strip().lower()
    found = sha256_file(path, chunk_size)
    if found != expected:
        size = path.stat().st_size
        raise DataError(
            f"{path} ({size:,} bytes) has SHA-256 {found}, expected {expected}: the file is corrupt, "
            f"truncated or a different version. Download it again (shared/data/SHA256SUMS lists the "
            f"published hashes); if you modified it on purpose, {SKIP_HINT}"
        )
    return found


def verify_folder(name: str, folder: str | os.PathLike[str], *, chunk_size: int = CHUNK_SIZE) -> dict[str, str | None]:
    """Verify every file of dataset ``name`` with a published hash that is present in ``folder``
    (found by :func:`kdgan.data.location.dataset_dir`). Returns {file name: hash found, or None if
    the file is absent}; the readers report missing files themselves. Raises DataError on the
    first mismatch, or when none of the dataset's files is there."""
    key = _canonical(name)
    folder = Path(folder)
    if not any((folder / file).is_file() for file in SHA256[key]):
        raise DataError(f"none of the {key} files ({', '.join(SHA256[key])}) is in {folder}; pass the folder that "
                        "holds them, or set data.verify=false to read other files there unchecked")
    results: dict[str, str | None] = {}
    for file, expected in SHA256[key].items():
        path = folder / file
        results[file] = verify_file(path, expected, chunk_size=chunk_size) if path.is_file() else None
    return results


__all__ = [
    "SHA256",
    "expected_sha256",
    "has_checksums",
    "sha256_file",
    "verify_folder",
    "verify_file",
]
