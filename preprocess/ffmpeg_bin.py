"""Locating the ffmpeg executable: the one on PATH, else the binary shipped by imageio-ffmpeg."""
import functools
import shutil
import subprocess


@functools.lru_cache(maxsize=None)
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary to run; raises RuntimeError when neither is available."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
    except ImportError:
        imageio_ffmpeg = None
    if imageio_ffmpeg is not None:
        try:
            return imageio_ffmpeg.get_ffmpeg_exe()
        except RuntimeError:
            pass
    raise RuntimeError("ffmpeg not found: install it (e.g. 'apt-get install ffmpeg') or "
                       "'pip install imageio-ffmpeg', which ships a binary")


@functools.lru_cache(maxsize=None)
def passthrough_option() -> dict:
    """The output option (as ffmpeg-python keyword) that keeps every decoded frame as one output frame, with no duplicates or
    drops to reach a constant rate: '-fps_mode passthrough' (ffmpeg 5.1 and later), else the
    older '-vsync passthrough'."""
    probe = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
             "nullsrc=s=16x16:d=0.04", "-fps_mode", "passthrough", "-f", "null", "-"]
    ok = subprocess.run(probe, stdin=subprocess.DEVNULL, capture_output=True).returncode == 0
    return {"fps_mode": "passthrough"} if ok else {"vsync": "passthrough"}


@functools.lru_cache(maxsize=None)
def showinfo_options() -> dict:
    """Options of the showinfo filter: checksum=0 where ffmpeg has it (4.4 and later), so that
    logging a frame's timestamp costs no pass over its pixels."""
    probe = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
             "nullsrc=s=16x16:d=0.04", "-vf", "showinfo=checksum=0", "-f", "null", "-"]
    ok = subprocess.run(probe, stdin=subprocess.DEVNULL, capture_output=True).returncode == 0
    return {"checksum": 0} if ok else {}


@functools.lru_cache(maxsize=None)
def ffmpeg_version() -> str:
    """The version ffmpeg reports ('5.1.9-0+deb12u1', '9.0.2-static ...'), recorded in
    store.json: two ffmpeg releases decode and encode the same video to different JPEGs."""
    out = subprocess.run([ffmpeg_exe(), "-hide_banner", "-version"], stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, errors="replace").stdout
    words = out.split()
    return words[2] if len(words) > 2 and words[:2] == ["ffmpeg", "version"] else "unknown"
