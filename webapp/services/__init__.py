"""The service layer: one function per use case, shared by REST, CLI and pages.

Every function takes a SQLAlchemy ``Session`` that is not in a transaction, and
runs its whole unit of work in one transaction of its own. Functions that touch
keys also take the process's ``hsm.HSM``; all take the validated
``webapp.config.ServerSettings`` where rules depend on settings, and an
``actor`` (who asks: a REST user name, ``cli``, ...) for the audit trail.
Failures raise ``webapp.services.errors.ServiceError`` subclasses, each with an
upstream PowerAuth error code.
"""

from __future__ import annotations

from webapp.services.activations import (
    ActivationView,
    InitResult,
    PrepareResult,
    block_activation,
    commit_activation,
    get_activation,
    import_activation,
    init_activation,
    list_activations,
    prepare_activation,
    remove_activation,
    unblock_activation,
)
from webapp.services.applications import (
    ApplicationView,
    create_application,
    get_application,
    import_master_key,
    list_applications,
    rotate_master_key,
)
from webapp.services.errors import ServiceError
from webapp.services.offline import (
    OfflinePayloadResult,
    VerifyResult,
    create_non_personalized_payload,
    create_personalized_payload,
    verify_offline_signature,
)

__all__ = [
    "ActivationView",
    "ApplicationView",
    "InitResult",
    "OfflinePayloadResult",
    "PrepareResult",
    "ServiceError",
    "VerifyResult",
    "block_activation",
    "commit_activation",
    "create_application",
    "create_non_personalized_payload",
    "create_personalized_payload",
    "get_activation",
    "get_application",
    "import_activation",
    "import_master_key",
    "init_activation",
    "list_activations",
    "list_applications",
    "prepare_activation",
    "remove_activation",
    "rotate_master_key",
    "unblock_activation",
    "verify_offline_signature",
]
