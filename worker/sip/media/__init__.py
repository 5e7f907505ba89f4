"""The media toolkit an answered call's flow drives, all on the SIP thread.

``events`` (facts pjsua callbacks record, pure), ``sdp`` (telephone-event on
payload type 101, pure), ``player`` (prompts), ``recorder`` (WAV recordings),
``transfer`` (REFER), ``bridge`` (second leg joined in the conference bridge),
``control`` (:class:`~worker.sip.media.control.CallMedia`, the
:class:`~worker.sip.answer.MediaControl` of one call, composing them).
"""
