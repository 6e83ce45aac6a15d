"""One error hierarchy for every surface (CLI exit codes, HTTP statuses).

Domain code raises these; each entrypoint maps them once: the CLI prints the message and exits
with ``exit_code``, the service returns ``http_status``. Messages name the object they concern
(a file, row and field; a child's pseudonymous id) and never carry names or identity numbers.
"""

from __future__ import annotations


class ShouhuError(Exception):
    """Base class of every error Shouhu reports to a person."""

    exit_code: int = 1
    http_status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(ShouhuError):
    """Settings or a configuration file are invalid."""

    exit_code = 3
    http_status = 500


class SourceFileError(ShouhuError):
    """A source file cannot be read at all (encoding, truncation, unknown table, no rows).

    Nothing from the file is stored when this is raised.
    """

    exit_code = 4
    http_status = 422

    def __init__(self, file: str, reason: str) -> None:
        super().__init__(f"{file}: {reason}")
        self.file = file
        self.reason = reason


class SourceRowError(ShouhuError):
    """One row of a source file breaks the data model; it names file, row and field."""

    exit_code = 4
    http_status = 422

    def __init__(self, file: str, row: int, field: str, reason: str) -> None:
        super().__init__(f"{file}, row {row}, field {field!r}: {reason}")
        self.file = file
        self.row = row
        self.field = field
        self.reason = reason


class MappingError(ShouhuError):
    """A header/value mapping file is malformed."""

    exit_code = 3
    http_status = 500


class PolicyError(ShouhuError):
    """The tier-policy file is invalid, or a policy cannot be applied to the data given.

    The message names the file and the field path (``default.yaml: hard_rules[2].when.op: ...``)
    so the county officer editing the file can find the line.
    """

    exit_code = 3
    http_status = 500


class StoreError(ShouhuError):
    """The feature store is missing, locked or inconsistent."""

    exit_code = 5
    http_status = 503


class NotFoundError(ShouhuError):
    """The object does not exist (or is outside the caller's area, which reads the same)."""

    exit_code = 6
    http_status = 404


class RegistryError(ShouhuError):
    """The model registry (MLflow) cannot be reached, or a registered model is inconsistent.

    For example a model version without the bundle artifact, or a bundle whose checksum no
    longer matches the one recorded when it was registered.
    """

    exit_code = 7
    http_status = 503


class PromotionRefusedError(ShouhuError):
    """A champion promotion was refused; nothing in the registry or the log was changed.

    Raised when the approver or the reason is missing, or when the version's recorded
    precision at capacity is below the tier policy's pre-registered minimum.
    """

    exit_code = 8
    http_status = 409


class InputGuardError(ShouhuError):
    """A scoring run was stopped by an input guard; nothing was scored or stored.

    The guards (limits in the tier policy's ``input_guards``) catch inputs a model must not be
    trusted with: data too old for the scoring date, a feature whose missing share jumped
    against the model's training reference, or scores that collapsed to nearly one value.
    """

    exit_code = 9
    http_status = 409


class StaleDataError(InputGuardError):
    """The newest ledger record is older than the policy allows on the scoring date."""


class MissingRateJumpError(InputGuardError):
    """A feature's share of missing values rose beyond the policy's limit against training."""


class ScoreCollapseError(InputGuardError):
    """The scores of one run spread less than the policy's minimum (a degenerate input)."""


class InsufficientDataError(ShouhuError):
    """Too little matured history to train or evaluate (a window without rows or events)."""

    exit_code = 10
    http_status = 409


class AuthenticationError(ShouhuError):
    """The caller is not signed in: no, an unknown, an expired or a revoked credential.

    The message never says which of these it was, so it cannot be used to probe accounts.
    """

    exit_code = 11
    http_status = 401


class PermissionDeniedError(ShouhuError):
    """The caller's role may not do this (a child outside the caller's area is a
    :class:`NotFoundError` instead, so its existence is never hinted)."""

    exit_code = 12
    http_status = 403


class ReviewRefusedError(ShouhuError):
    """A review or tier decision breaks the tier policy or the review process; nothing was
    recorded. For example an override below a floor or a hard rule, an override without a
    written reason, or a proposal that was already decided."""

    exit_code = 13
    http_status = 409


__all__ = [
    "AuthenticationError",
    "ConfigError",
    "InputGuardError",
    "InsufficientDataError",
    "MappingError",
    "MissingRateJumpError",
    "NotFoundError",
    "PermissionDeniedError",
    "PolicyError",
    "PromotionRefusedError",
    "RegistryError",
    "ReviewRefusedError",
    "ScoreCollapseError",
    "ShouhuError",
    "SourceFileError",
    "SourceRowError",
    "StaleDataError",
    "StoreError",
]
