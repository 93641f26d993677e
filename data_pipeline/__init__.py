"""Audio + text corpora -> codec tokens in ArrayRecord (TFDS builders) -> grain batches.

Modules (one job each):
  make_mini_corpus  synthesize the bundled mini corpus (espeak-ng + Festival, Harvard sentences)
  sources           utterance lists from manifests (CSV/JSONL), LJSpeech, LibriTTS layouts
  segment           LibriLight VAD segmentation (<= 25 s) and transcript manifests
  transcribe        faster-whisper transcripts for LibriLight segments (local model)
  audio_io          load + check one clip (corrupt/empty/silent/short/long/low-rate -> BadInput)
  encode            text tokens + batched codec encode, per-chunk cache, bad-input report
  builders/         TFDS builders mini, speech_folder, librilight_medium (array_record)
  build             CLI: python -m data_pipeline.build --dataset ...
  loader            grain pipeline: sharding, length filter, buckets, delay pattern, padding
  bench_loader      loader throughput (audio frames/s)

Depends on small_e_jax.codec, small_e_jax.text and small_e_jax.delay only (never the model or
the trainer).
"""
