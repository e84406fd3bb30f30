"""Locating the ffmpeg executable: the one on PATH, else the binary shipped by imageio-ffmpeg."""
import functools
import shutil


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
