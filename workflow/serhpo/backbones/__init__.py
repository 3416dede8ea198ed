"""Pretrained speech backbones on local disk: the tiny random wav2vec2 and the downloaded ones.

A backbone folder has the layout of SpeechBrain's ``emotion-recognition-wav2vec2-IEMOCAP``
(see :mod:`serhpo.backbones.speechbrain_io`); :mod:`serhpo.backbones.tiny` builds a tiny
one offline, :mod:`serhpo.backbones.fetch` downloads the real one, and
:mod:`serhpo.models.wav2vec2` trains on either.
"""
