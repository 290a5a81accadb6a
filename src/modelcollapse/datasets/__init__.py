"""Data sets: finding and checking files (`fetch`), IDX files (`idx`), images (`images`), corpora (`text`)."""

from modelcollapse.datasets.fetch import ChecksumError, DataNotFoundError, data_dir, locate, stable_permutation
from modelcollapse.datasets.images import ImageSet, load_images, train_validation_split
from modelcollapse.datasets.text import Document, load_brown, load_wikitext2, make_blocks, split_documents

__all__ = ["ChecksumError", "DataNotFoundError", "Document", "ImageSet", "data_dir", "load_brown", "load_images",
           "load_wikitext2", "locate", "make_blocks", "split_documents", "stable_permutation",
           "train_validation_split"]
