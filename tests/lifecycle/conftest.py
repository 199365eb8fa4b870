from tests.crash.conftest import client, fleet  # noqa: F401
from tests.faultlab.fixtures import fault_cluster, fault_db  # noqa: F401
