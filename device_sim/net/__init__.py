"""device_sim.net: the camera's network stack — identity, authenticated encrypted P2P sessions, channels, MQTT.

Walk: ``identity.manufacture`` (factory keys + DID) -> ``provisioning`` (QR seen through sensor + ISP, Wi-Fi join,
one-time bind token) -> ``p2p.DeviceAgent`` (rendezvous registration, ICE via aioice, relay fallback) ->
``session`` (SIGMA-style handshake, AES-GCM records, replay window) -> ``channels.Mux`` (video/audio/command/file/
alert with priorities) -> ``endpoint.DeviceEndpoint`` (authorisation on every request against ``accounts``,
access log, "someone is watching"). ``mqtt`` carries the IoT SPEC (``device_sim.spec``) through mosquitto.
"""
