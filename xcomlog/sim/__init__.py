"""A virtual Studer installation behind a simulated Xcom-232i, over a pty, TCP or UDP.

    from xcomlog.sim import Simulator, Installation, FaultConfig
    sim = Simulator()                       # 2 XT, 1 VT, 2 VS, a BSP and the gateway 501
    with sim.serve_tcp("127.0.0.1", 0) as link:
        print(link.address)

It answers every service of the specification from the datapoint catalog, with values
that move like a real system, and can inject the faults of real links.
"""

from __future__ import annotations

from .faults import FaultConfig
from .installation import Device, Installation
from .responder import Simulator

__all__ = ["Simulator", "Installation", "Device", "FaultConfig"]
