"""edgeloop: a local AWS-IoT-like edge gateway, device fleet simulator and HIL rig."""

__version__ = "0.1.0"
