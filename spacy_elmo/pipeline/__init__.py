"""spaCy integration: the ``elmo`` component, its Doc data and its weight loaders."""
from .component import ElmoComponent, make_elmo
from .doc_data import ElmoDocData, install_extensions
from .loaders import bilm_loader

__all__ = ["ElmoComponent", "make_elmo", "ElmoDocData", "install_extensions", "bilm_loader"]
