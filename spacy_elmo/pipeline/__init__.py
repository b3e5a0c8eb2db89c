"""spaCy integration: the ``elmo`` component and its weight loaders."""
from .component import ElmoComponent, make_elmo
from .loaders import bilm_loader

__all__ = ["ElmoComponent", "make_elmo", "bilm_loader"]
