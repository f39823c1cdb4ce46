"""The `vector_service` module's API, served by a vector-service server.

The four classes keep the original module's names and call signatures, so call sites stay as
they are; only construction names the server (or `$VECTOR_SERVICE_URL` and
`$VECTOR_SERVICE_API_KEY` do). Standard library only.

    from vector_service import Retriever, FallbackResult, MalformedPromptError

    hits = Retriever().search("upload failed", top_k=3, session_id="s-1")
    if isinstance(hits, FallbackResult):
        print("no confident answer:", hits.reason, hits.confidence)
"""

from ._http import Client
from .context_builder import ContextBuilder
from .decorators import log_and_measure, log_and_time, track_metrics
from . import exceptions
from .embeddable_db_mixin import EmbeddableDBMixin
from .embedding_backfill import EmbeddingBackfill
from .exceptions import (
    AuthenticationError,
    BackendError,
    BackfillError,
    ConflictError,
    ErrorResult,
    LimitExceededError,
    MalformedPromptError,
    NotFoundError,
    RateLimitError,
    RetrieverConfigurationError,
    SemanticServiceError,
    ServiceTimeoutError,
    ServiceUnavailableError,
    VectorServiceError,
)
from .patch_logger import PatchLogger
from .retriever import FallbackResult, Retriever

__all__ = [
    "Retriever",
    "ContextBuilder",
    "PatchLogger",
    "EmbeddingBackfill",
    "EmbeddableDBMixin",
    "FallbackResult",
    "Client",
    *exceptions.__all__,
    "log_and_measure",
    "log_and_time",
    "track_metrics",
]
