"""The web page that speaks (python -m small_e_jax.serve): its HTTP endpoints (whole WAV and
stream), and the page itself driven in headless Chromium (Selenium) against a tiny random-weight
model and a fake 8 kHz codec (a rate Web Audio plays)."""

from __future__ import annotations

import base64
import io
import json
import shutil
import socket
import threading
import time
import urllib.request

import numpy as np
import pytest
import soundfile

from small_e_jax import serve
from small_e_jax.inference import Synthesizer
from tests.inference.conftest import FakeCodec, save_checkpoint

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = "/usr/bin/chromedriver"
MAX_FRAMES = 12  # short utterances: the test is about the page, not the speech


class FakeCodec8k(FakeCodec):
    """The fake codec at a rate a browser's Web Audio accepts (3-768 kHz)."""

    sample_rate, hop_length, frame_rate = 8000, 400, 20.0


@pytest.fixture(scope="module")
def voice(tiny) -> Synthesizer:
    model, config = tiny
    return Synthesizer(model, config, codec=FakeCodec8k(config.model.n_codebooks, config.model.codebook_size))


@pytest.fixture(scope="module")
def app(voice):
    return serve.create_app(voice, max_frames=MAX_FRAMES)


@pytest.fixture(scope="module")
def client(app):
    from fastapi.testclient import TestClient

    return TestClient(app)


def tone_wav(seconds: float = 1.5, rate: int = FakeCodec8k.sample_rate) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    buf = io.BytesIO()
    soundfile.write(buf, (0.3 * np.sin(2 * np.pi * 13 * t)).astype(np.float32), rate, format="WAV")
    return buf.getvalue()


def check_wav(data: bytes) -> np.ndarray:
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    wav, rate = soundfile.read(io.BytesIO(data))
    assert rate == FakeCodec8k.sample_rate and len(wav) > 0
    return wav


def test_page_and_info(client):
    page = client.get("/")
    assert page.status_code == 200 and 'id="speak"' in page.text and "<audio" in page.text
    assert client.get("/api/info").json()["busy"] is False


def test_speak_returns_a_wav(client):
    r = client.post("/api/speak", data={"text": "Hello there.", "temperature": "0.8", "top_k": "20", "seed": "3"})
    assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
    check_wav(r.content)
    again = client.post("/api/speak", data={"text": "Hello there.", "temperature": "0.8", "top_k": "20", "seed": "3"})
    assert again.content == r.content  # the seed fixes the sample
    long = client.post("/api/speak", data={"text": "One sentence here. And a second one."})
    assert long.status_code == 200 and long.headers["x-sentences"] == "2"
    check_wav(long.content)


def test_speak_with_a_voice_prompt(client):
    r = client.post("/api/speak", data={"text": "Hello there.", "prompt_text": "What the voice says."},
                    files={"prompt_wav": ("voice.wav", tone_wav(), "audio/wav")})
    assert r.status_code == 200, r.text
    check_wav(r.content)


@pytest.mark.parametrize("form, files, message", [
    ({"text": "   "}, None, "Type some text"),
    ({"text": "Hi.", "temperature": "0"}, None, "temperature must be between"),
    ({"text": "Hi.", "temperature": "hot"}, None, "temperature must be a number"),
    ({"text": "Hi.", "temperature": "nan"}, None, "temperature must be a finite number"),
    ({"text": "Hi.", "top_k": "-1"}, None, "top-k must be between"),
    ({"text": "Hi.", "top_k": "2.5"}, None, "top-k must be a whole number"),
    ({"text": "x" * 3000}, None, "too long"),
    ({"text": "Hi.", "prompt_text": "Words."}, {"prompt_wav": ("a.wav", b"not audio at all", "audio/wav")},
     "not audio that can be read"),
    ({"text": "Hi."}, {"prompt_wav": ("a.wav", tone_wav(), "audio/wav")}, "needs its transcript"),
    ({"text": "Hi.", "prompt_text": "Words."}, {"prompt_wav": ("a.wav", tone_wav(0.2), "audio/wav")},
     "too short"),
])
def test_bad_input_gets_a_clear_message(client, form, files, message):
    r = client.post("/api/speak", data=form, files=files)
    assert r.status_code == 400
    assert message in r.json()["error"] and "Traceback" not in r.text


def read_stream(response) -> list[dict]:
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


def stream_pcm(events: list[dict]) -> np.ndarray:
    return np.concatenate([np.frombuffer(base64.b64decode(e["pcm"]), "<i2") for e in events if e["type"] == "audio"])


@pytest.mark.parametrize("text", ["Hello there.", "One sentence here. And a second one."])
def test_stream_gives_the_same_audio_as_the_wav(client, text):
    """/api/stream: start, audio chunks, done; its PCM is /api/speak's WAV (same seed), to the LSB."""
    form = {"text": text, "temperature": "0.8", "top_k": "20", "seed": "3"}
    events = read_stream(client.post("/api/stream", data=form))
    assert events[0]["type"] == "start" and events[0]["sample_rate"] == FakeCodec8k.sample_rate
    assert events[-1]["type"] == "done" and all(e["type"] == "audio" for e in events[1:-1])
    n_sentences = len(events[0]["sentences"])
    assert n_sentences == text.count(".") and {e["sentence"] for e in events[1:-1]} == set(range(n_sentences))
    pcm = stream_pcm(events)
    assert events[-1]["seconds"] == round(len(pcm) / FakeCodec8k.sample_rate, 3)
    wav = client.post("/api/speak", data=form)
    whole, _ = soundfile.read(io.BytesIO(wav.content), dtype="int16")
    assert len(whole) == len(pcm)
    assert np.abs(whole.astype(np.int32) - pcm).max() <= 1


@pytest.mark.parametrize("form, message", [
    ({"text": ""}, "Type some text"), ({"text": "Hi.", "top_k": "many"}, "top-k must be a whole number"),
])
def test_stream_bad_input_is_a_400(client, form, message):
    r = client.post("/api/stream", data=form)
    assert r.status_code == 400 and message in r.json()["error"]


def test_stream_reports_an_error_as_an_event(client):
    events = read_stream(client.post("/api/stream", data={"text": "A snow \u2603 man."}))
    assert [e["type"] for e in events] == ["start", "error"] and "cannot encode" in events[-1]["error"]


def test_a_stream_left_behind_frees_the_queue(app):
    events = app.state.speaker.stream("One sentence. And another.", top_k="20")
    assert next(events)["type"] == "start" and app.state.speaker.lock.locked()
    events.close()  # what the server does when the page goes away mid-stream
    assert not app.state.speaker.lock.locked()


def test_requests_queue(app, voice):
    """Two requests at once: the second waits for the first (one synthesis at a time)."""
    speaker = app.state.speaker
    order = []
    real = voice.synthesize

    def slow(*args, **kwargs):
        order.append("start")
        time.sleep(0.3)
        order.append("end")
        return real(*args, **kwargs)

    voice.synthesize = slow
    try:
        threads = [threading.Thread(target=speaker.speak, args=("Hi.",)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        del voice.synthesize
    assert order == ["start", "end", "start", "end"]


def test_cli_without_a_model_says_to_pass_a_checkpoint(capsys, monkeypatch):
    from small_e_jax import pretrained
    from small_e_jax.cli import serve as serve_cli

    monkeypatch.setattr(pretrained, "shipped_models", lambda: [])
    assert serve_cli.main([]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pass --checkpoint" in err


def test_load_synthesizer_restores_a_checkpoint(tmp_path, tiny):
    model, config = tiny
    save_checkpoint(tmp_path / "ckpt", model, config, step=7)
    synth = serve.load_synthesizer(str(tmp_path / "ckpt"))
    assert synth.checkpoint_step == 7


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(app):
    import uvicorn

    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not srv.started:
        assert time.time() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    srv.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None or not shutil.which(CHROMEDRIVER):
        pytest.skip("needs chromium and chromium-driver (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--autoplay-policy=no-user-gesture-required", "--mute-audio"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def page_audio(browser) -> bytes:
    """The bytes in the page's <audio> player, read back inside the page (a blob: URL lives in
    the page only)."""
    from selenium.webdriver.common.by import By

    src = browser.find_element(By.ID, "audio").get_attribute("src")
    assert src.startswith("blob:"), src
    data = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0]).then(r => r.arrayBuffer()).then(b => done(Array.from(new Uint8Array(b))))"
        ".catch(e => done(String(e)));", src)
    assert isinstance(data, list), data
    return bytes(data)


def test_the_page_speaks_in_a_browser(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server)
    wait = WebDriverWait(browser, 30)
    # Empty text: the page shows the server's message, no audio.
    browser.find_element(By.ID, "speak").click()
    wait.until(lambda d: d.find_element(By.ID, "error").text)
    assert "Type some text to speak" in browser.find_element(By.ID, "error").text
    assert not browser.find_element(By.ID, "audio").get_attribute("src")
    # A bad sampling value: the server's message, on the page.
    browser.find_element(By.ID, "text").send_keys("Hello from the browser.")
    temperature = browser.find_element(By.ID, "temperature")
    temperature.clear()
    temperature.send_keys("0")
    browser.find_element(By.ID, "speak").click()
    wait.until(lambda d: "temperature" in d.find_element(By.ID, "error").text)
    # Good input: the audio element gets a WAV.
    temperature.clear()
    temperature.send_keys("0.9")
    top_k = browser.find_element(By.ID, "top-k")
    top_k.clear()
    top_k.send_keys("20")
    browser.find_element(By.ID, "speak").click()
    wait.until(lambda d: d.find_element(By.ID, "audio").get_attribute("src"))
    assert browser.find_element(By.ID, "error").text == ""
    check_wav(page_audio(browser))
    # The server is free again once the page has its audio.
    body = urllib.request.urlopen(server + "api/info", timeout=10).read()
    assert b'"busy":false' in body


def test_the_page_plays_audio_before_the_synthesis_ends(server, browser, voice):
    """Streaming, seen from the browser: the first sentence's audio is received and scheduled on
    the page's audio clock while the second sentence is held back on the server."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    gate = threading.Event()
    real = voice.stream_long

    def held(*args, **kwargs):
        for n, chunk in real(*args, **kwargs):
            if n == 1:
                assert gate.wait(60), "the test never saw the first sentence on the page"
            yield n, chunk

    voice.stream_long = held
    try:
        browser.get(server)
        wait = WebDriverWait(browser, 30)
        browser.find_element(By.ID, "text").send_keys("The first sentence. Then the second one.")
        browser.find_element(By.ID, "speak").click()
        wait.until(lambda d: d.execute_script("return window.smallE.chunks") >= 1)
        progress = browser.execute_script("return window.smallE")
        assert progress["done"] is False and progress["scheduled"] == progress["chunks"]  # playing already
        assert "sentence 1 of 2" in browser.find_element(By.ID, "status").text
        assert not browser.find_element(By.ID, "audio").get_attribute("src")
        gate.set()
        wait.until(lambda d: d.execute_script("return window.smallE.done"))
    finally:
        gate.set()
        del voice.stream_long
    progress = browser.execute_script("return window.smallE")
    assert progress["chunks"] > 1 and progress["scheduled"] == progress["chunks"]
    assert "first sound after" in browser.find_element(By.ID, "status").text
    assert browser.find_element(By.ID, "error").text == ""
    check_wav(page_audio(browser))
