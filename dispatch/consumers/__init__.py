"""
The sockets the mobile apps speak to (docs/protocol.md is the reference for
every message). Each handler parses the message, asks dispatch.access,
calls one service, and sends; news reaches every socket through its groups
(dispatch.broadcast), and each socket shows it as dispatch.access allows.
"""

from dispatch.consumers.driver import DriverConsumer
from dispatch.consumers.followers import FollowerConsumer
from dispatch.consumers.ride import RideConsumer

__all__ = ["DriverConsumer", "FollowerConsumer", "RideConsumer"]
