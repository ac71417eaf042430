"""The few protocols everything else implements (Archai-style `api/`)."""
from linas_lib.api.objective import Objective
from linas_lib.api.predictor import Predictor
from linas_lib.api.search_space import ActiveWhen, InvalidEncodingError, SearchSpace, Variable
from linas_lib.api.searcher import Searcher
from linas_lib.api.store import MissingObjectError, Store, StoreError
from linas_lib.api.tabular import TableEntry, TabularSupernet

__all__ = [
    "ActiveWhen",
    "InvalidEncodingError",
    "MissingObjectError",
    "Objective",
    "Predictor",
    "SearchSpace",
    "Searcher",
    "Store",
    "StoreError",
    "TableEntry",
    "TabularSupernet",
    "Variable",
]
