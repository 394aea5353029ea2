"""device_sim.storage — TF-card recording, event clips, encrypted cloud upload, notification, playback, NAS copy.

RFC 8216 (HLS, EXT-X-KEY AES-128), ISO/IEC 14496-12 (fragmented MP4), ISO/IEC 13818-1 (MPEG-TS), SQLite WAL.

Wiring for the composition root (``device_sim/camera.py``); every call below takes the
:class:`~device_sim.media.packets.EncodedPacket`/``StreamInfo`` of ``device_sim.media.packets``::

    from device_sim.hal.sdcard import SdCard
    from device_sim.storage.service import StorageService          # card detect, recorder, index, retention
    from device_sim.storage.clips import ClipMaker
    from device_sim.storage.crypto import UserKey, IvLedger
    from device_sim.storage.uploader import Uploader
    from device_sim.storage.notify import Notifier

    storage = StorageService(SdCard(state / "sd", capacity_bytes), on_status=publish_sd_card_status,
                             epoch_base=wall_clock_at_pts_zero)
    storage.set_stream_info(main_info)               # once the encoder has produced its StreamInfo
    uploader = Uploader(cloud_url, cafile=cloud_cert, token=device_token).start()     # token: from provisioning
    notifier = Notifier(cloud_url, cafile=cloud_cert, token=device_token, mqtt_publish=None).start()
    clips = ClipMaker(state / "clips", UserKey.from_hex(user_key_hex), epoch_base=wall_clock_at_pts_zero,
                      ledger=IvLedger(state / "ivs.bin"), on_segment=uploader.enqueue_segment,
                      on_finish=uploader.enqueue_clip)      # out_dir in RAM/flash; or storage.clip_dir() with
                                                            # storage_check=lambda: card.require(write=True)

    # every encoded packet (all streams; storage records "main")
    storage.write(pkt); [s for s in sessions if not s.add(pkt)]     # open clip sessions take post-roll packets
    # an event is decided (the spec's event dict from device_sim.spec.events works as is):
    notifier.notify(event)                                          # FIRST: returns at once
    storage.mark_event(event_id, wall_start, wall_end)              # minute files move to the event tier
    stream = uploader.choose_stream({"main": main_bps, "sub": sub_bps})
    sessions.append(clips.start(event, ring_buffer.packets(), infos[stream]))
    # action format-sd: storage.format_card(); properties: storage.status()["spec"] -> {"sd-status": 0..3,
    # "total-space": MB, "free-space": MB} (model.json siid 6); detailed: storage.status()["sd-card-status"]

Modules: ``recorder`` (minute MP4s), ``index`` (SQLite), ``retention`` (tiers), ``reconcile`` (crash recovery),
``faults`` (power-cut harness), ``clips``, ``crypto``, ``uploader``, ``notify``, ``playback`` (card by time range;
cloud HLS client), ``nas``, ``sdcard_status``, ``service``, ``mux`` (PyAV remux), ``synth`` (synthetic HEVC).
The cloud end is ``python -m device_sim.services.cloud``; the card is ``device_sim.hal.sdcard``.
"""
