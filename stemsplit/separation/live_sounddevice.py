"""The sound card through PortAudio (the ``sounddevice`` package, the optional ``stream`` extra).

``SoundDeviceBackend`` is the ``AudioBackend`` (``live.py``) of real hardware: one PortAudio
stream (duplex, input only or output only) with a fixed block size, float32 samples, and the
loop's callback called from PortAudio's thread. It is the only module that imports sounddevice,
and only when a device is asked for; the tests never do (no sound hardware there).
"""
from __future__ import annotations

import threading
from collections.abc import Callable

from stemsplit.errors import install_extra
from stemsplit.separation.live import Callback, LiveAudioError


def load_sounddevice():
    """The sounddevice module; a one-line LiveAudioError when it or the PortAudio library is missing."""
    try:
        import sounddevice
    except ImportError:
        raise LiveAudioError("live audio (--input-device, --output-device, --play) needs the sounddevice package: "
                             f"{install_extra('stream')}") from None
    except OSError as exc:  # the package is there, the PortAudio library it loads is not
        raise LiveAudioError(f"live audio needs the PortAudio library ({exc}): install it (Debian/Ubuntu: apt-get "
                             "install libportaudio2; macOS: brew install portaudio)") from None
    return sounddevice


def device_id(name: str | None) -> int | str | None:
    """A device as the user named it: its number in `stemsplit stream --list-devices`, or part of its name."""
    if name is None:
        return None
    return int(name) if name.strip().isdigit() else name


def list_devices() -> str:
    return str(load_sounddevice().query_devices())


class SoundDeviceBackend:
    def __init__(self, input_device: str | None = None, output_device: str | None = None):
        self.sd = load_sounddevice()
        self.input_device, self.output_device = device_id(input_device), device_id(output_device)

    def run(self, callback: Callback, *, sample_rate: int, block: int, in_channels: int, out_channels: int,
            idle: Callable[[], bool]) -> None:
        sd, finished = self.sd, threading.Event()

        def duplex(indata, outdata, frames, time, status):
            if not callback(indata, outdata):
                raise sd.CallbackStop

        def capture(indata, frames, time, status):
            if not callback(indata, None):
                raise sd.CallbackStop

        def playback(outdata, frames, time, status):
            if not callback(None, outdata):
                raise sd.CallbackStop

        common = {"samplerate": sample_rate, "blocksize": block, "dtype": "float32",
                  "finished_callback": finished.set}
        try:
            if in_channels and out_channels:
                stream = sd.Stream(device=(self.input_device, self.output_device),
                                   channels=(in_channels, out_channels), callback=duplex, **common)
            elif in_channels:
                stream = sd.InputStream(device=self.input_device, channels=in_channels, callback=capture, **common)
            else:
                stream = sd.OutputStream(device=self.output_device, channels=out_channels, callback=playback,
                                         **common)
        except (sd.PortAudioError, ValueError) as exc:
            raise LiveAudioError(f"cannot open the sound device at {sample_rate} Hz, {block}-sample blocks ({exc}); "
                                 "see stemsplit stream --list-devices") from None
        with stream:
            while not finished.wait(0.1) and idle():
                pass
