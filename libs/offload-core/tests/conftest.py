import pytest

from offload_testkit.messages import started_publisher
from offload_testkit.runner_thread import WORK_TOPOLOGY


@pytest.fixture
def publisher(core_config):
    """A started publisher that declares the work queue's topology."""
    with started_publisher(core_config, WORK_TOPOLOGY) as publisher:
        yield publisher
