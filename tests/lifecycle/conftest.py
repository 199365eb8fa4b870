from tests.faultlab.fixtures import fault_cluster, fault_db  # noqa: F401
