"""The kiosk records its sessions as evidence (issue 23): both faces and voices, fixed-length
WebM segments hashed as they are sealed, kept on disk until the server has them, uploaded
through the resumable uploads at what the call leaves of the line.

- `media`: the evidence rendition (composer, voice mixer, segment encoder);
- `store`: the recording on the kiosk's disk (segments, their hashes, marks, gaps);
- `worker`: the encoder thread (never the event loop: the call is never held up);
- `recorder`: the session's recorder, fed by the call's media, marking its timeline;
- `delivery`: open, segments, close, retried, over HTTP (`transport`), paced (`pacer`);
- `consent`: the words shown and the participant's answer;
- `kiosk`: all of it as the kiosk client (booth_client.client) uses it; `config` its
  settings (`[recording]`).
"""
