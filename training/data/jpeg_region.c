/* Decode only a rectangle of a JPEG, with libjpeg-turbo's libjpeg API.
 *
 * Rows above the rectangle are skipped (jpeg_skip_scanlines: no inverse DCT, no colour
 * conversion), rows below it are never decoded at all (the decoder stops after the last row
 * needed), and within a row only the iMCU columns covering the rectangle are produced
 * (jpeg_crop_scanline). One more column than asked is decoded on each side: fancy chroma
 * upsampling reads the neighbours of the edge columns, and with them the pixels are identical
 * to a full decode's (4:2:0, 4:2:2, 4:4:4, every scale). Rows need no margin: libjpeg-turbo
 * keeps the context rows vertical upsampling reads when it skips scanlines.
 *
 * Built on first use by training/data/region.py (cc + libjpeg-turbo headers) and called
 * through ctypes; when it cannot be built, training decodes whole frames with simplejpeg.
 *
 * int region_decode(data, size, x, y, w, h, scale_denom, out, row, row_size, &width, &height)
 *   decodes rows y..y+h-1, columns x..x+w-1 of the image scaled by 1/scale_denom (coordinates
 *   in the scaled image) as RGB into `out` (h rows of w * 3 bytes), using `row` (row_size
 *   bytes, at least (width of the scaled image + 64) * 3) as scratch. `width` and `height`
 *   receive the scaled image's size. Returns 0, or -1 with the reason in region_error().
 *   Like simplejpeg's strict mode, a warning (corrupt or truncated data) is an error.
 */
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <jpeglib.h>

static __thread char last_error[JMSG_LENGTH_MAX + 64];

struct error_mgr {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
};

static void on_error(j_common_ptr cinfo)
{
    struct error_mgr *err = (struct error_mgr *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, last_error);
    longjmp(err->jump, 1);
}

static void on_message(j_common_ptr cinfo, int level)
{
    if (level < 0)  /* a warning: the data is corrupt or truncated */
        on_error(cinfo);
}

const char *region_error(void)
{
    return last_error;
}

int region_decode(const unsigned char *data, unsigned long size, int x, int y, int w, int h,
                  int scale_denom, unsigned char *out, unsigned char *row,
                  unsigned long row_size, int *width, int *height)
{
    struct jpeg_decompress_struct cinfo;
    struct error_mgr err;
    JDIMENSION xoff, cw, want;
    int r;

    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = on_error;
    err.pub.emit_message = on_message;
    if (setjmp(err.jump)) {
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, size);
    jpeg_read_header(&cinfo, TRUE);
    cinfo.out_color_space = JCS_RGB;
    cinfo.scale_num = 1;
    cinfo.scale_denom = (unsigned int)scale_denom;
    jpeg_start_decompress(&cinfo);
    *width = (int)cinfo.output_width;
    *height = (int)cinfo.output_height;
    if (x < 0 || y < 0 || w < 1 || h < 1 || (JDIMENSION)(x + w) > cinfo.output_width ||
            (JDIMENSION)(y + h) > cinfo.output_height) {
        snprintf(last_error, sizeof last_error, "region %dx%d at (%d, %d) outside the %ux%u "
                 "image", w, h, x, y, cinfo.output_width, cinfo.output_height);
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    if ((unsigned long)(cinfo.output_width + 64) * 3 > row_size) {
        snprintf(last_error, sizeof last_error, "row buffer too small");
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    /* One column more on each side where the image has one: jpeg_crop_scanline widens the
     * region to whole iMCUs, and a left edge already on an iMCU boundary would otherwise be
     * upsampled from a replicated edge column instead of its real left neighbour. */
    xoff = (JDIMENSION)(x > 0 ? x - 1 : 0);
    want = (JDIMENSION)(x + w) + ((JDIMENSION)(x + w) < cinfo.output_width ? 1 : 0);
    if (want - xoff < 4) {  /* one chroma sample wide is upsampled unlike the full image */
        want = xoff + 4 < cinfo.output_width ? xoff + 4 : cinfo.output_width;
        xoff = want > 4 ? want - 4 : 0;
    }
    cw = want - xoff;
    if (xoff > 0 || cw < cinfo.output_width)
        jpeg_crop_scanline(&cinfo, &xoff, &cw);
    if (y > 0 && jpeg_skip_scanlines(&cinfo, (JDIMENSION)y) != (JDIMENSION)y) {
        snprintf(last_error, sizeof last_error, "cannot skip to row %d", y);
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    for (r = 0; r < h; r++) {
        JSAMPROW line = row;
        if (jpeg_read_scanlines(&cinfo, &line, 1) != 1) {
            snprintf(last_error, sizeof last_error, "no data for row %d", y + r);
            jpeg_destroy_decompress(&cinfo);
            return -1;
        }
        memcpy(out + (size_t)r * w * 3, row + (size_t)(x - (int)xoff) * 3, (size_t)w * 3);
    }
    jpeg_abort_decompress(&cinfo);  /* the rows below the region are never decoded */
    jpeg_destroy_decompress(&cinfo);
    return 0;
}
