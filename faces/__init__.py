"""The participant's face: detection and an advisory similarity score between the live still
and the KTP's photo, run offline. Advice for the officer, never a decision. Imports neither
`server` nor `booth_client`."""
