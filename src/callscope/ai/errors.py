"""Provider errors: retryable (the provider is down or slow) or permanent (it refuses the input)."""


class ProviderError(Exception):
    """Base of every provider failure."""


class ProviderUnavailable(ProviderError):
    """503, timeout, connection error: worth retrying later."""


class ProviderRejected(ProviderError):
    """The provider refused this input (e.g. audio it cannot decode): retrying will not help."""
