import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from runner_app import TOPOLOGY

from offload_core.publisher import Publisher


@pytest.fixture
def publisher(core_config):
    publisher = Publisher(core_config, TOPOLOGY).start()
    assert publisher.wait_ready(10)
    yield publisher
    publisher.close()
