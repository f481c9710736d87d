"""A participant's media: publishers, receivers, playback, the video view and SFrame on RTP payloads."""
