"""The request and response models, in one import for the layers that use both."""

from ferryman.http.request import Request, reason_phrase
from ferryman.http.response import Response

__all__ = ["Request", "Response", "reason_phrase"]
