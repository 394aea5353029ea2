"""Wiring between the SPEC service and device parts (PTZ head, P2P live hub).

Xiaomi MIoT-Spec-V2 ptz-control service shape: actions take their in-arguments as properties (piids) and report
the resulting position in their out-arguments.
"""
from __future__ import annotations

from device_sim.hal.ptz import PtzController

from .service import SpecService

PTZ_SIID = 5


def bind_ptz(spec: SpecService, ptz: PtzController) -> None:
    def publish():
        pan, tilt = ptz.position()
        spec.update("ptz-control", "pan", round(pan, 2))
        spec.update("ptz-control", "tilt", round(tilt, 2))
        spec.update("ptz-control", "homed", all(s.homed for s in ptz.state.values()))
        return {1: round(pan, 2), 2: round(tilt, 2)}

    def move(args):
        ptz.move_to(args[5], args[6])
        return publish()

    def goto(args):
        ptz.goto_preset(args[4])
        return publish()

    def save(args):
        ptz.save_preset(args[4])
        return {}

    def calibrate(args):
        ptz.home()
        return publish()

    spec.on_action[(PTZ_SIID, 1)] = move
    spec.on_action[(PTZ_SIID, 2)] = goto
    spec.on_action[(PTZ_SIID, 3)] = save
    spec.on_action[(PTZ_SIID, 4)] = calibrate
