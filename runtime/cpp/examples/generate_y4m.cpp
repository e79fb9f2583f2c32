// Generate a video with the pomrt C API and write it as Y4M (YUV 4:4:4, playable by ffplay/mpv,
// convertible by ffmpeg -i out.y4m out.mp4).
//
//   generate_y4m ARTIFACT_DIR OUT.y4m [--frames 16] [--label 0] [--seed 0] [--steps 20]
//                [--cfg 2.0] [--upscale 16] [--fps 8]
//
// Frames of the tiny model are RGB images in about [-1, 1]: uint8 = round((x + 1) * 127.5),
// then nearest-neighbour upscaled (a 16x16 latent is hard to see), then BT.601 full-range YCbCr.
// When the runtime decodes (pomrt_decode_info: the artifact's decoder engines for this GPU), the
// video is the decoded RGB frames instead, same mapping, not upscaled: --frames counts latent
// frames, each giving frames_first/frames_next RGB frames (a Wan stream: 1, then 4).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "pomrt.h"

namespace
{

struct Args
{
    std::string artifact;
    std::string out;
    int32_t frames{16};
    int32_t label{0};
    uint64_t seed{0};
    int32_t steps{20};
    float cfg{2.0F};
    int32_t upscale{16};
    int32_t fps{8};
};

bool parseArgs(int argc, char** argv, Args& args)
{
    if (argc < 3)
    {
        return false;
    }
    args.artifact = argv[1];
    args.out = argv[2];
    for (int i = 3; i + 1 < argc; i += 2)
    {
        std::string const key = argv[i];
        char const* value = argv[i + 1];
        if (key == "--frames") args.frames = std::atoi(value);
        else if (key == "--label") args.label = std::atoi(value);
        else if (key == "--seed") args.seed = std::strtoull(value, nullptr, 10);
        else if (key == "--steps") args.steps = std::atoi(value);
        else if (key == "--cfg") args.cfg = static_cast<float>(std::atof(value));
        else if (key == "--upscale") args.upscale = std::atoi(value);
        else if (key == "--fps") args.fps = std::atoi(value);
        else return false;
    }
    return args.frames > 0 && args.upscale > 0 && args.fps > 0;
}

uint8_t toByte(float x)
{
    return static_cast<uint8_t>(std::lround(std::clamp((x + 1.0F) * 127.5F, 0.0F, 255.0F)));
}

//! One frame (C x H x W) as upscaled Y, Cb, Cr planes (C == 1: grey; C >= 3: the first 3 are RGB).
std::vector<uint8_t> toYuv444(float const* frame, int32_t channels, int32_t h, int32_t w, int32_t upscale)
{
    int32_t const outW = w * upscale;
    size_t const plane = static_cast<size_t>(outW) * static_cast<size_t>(h * upscale);
    std::vector<uint8_t> yuv(3 * plane);
    for (int32_t y = 0; y < h * upscale; ++y)
    {
        for (int32_t x = 0; x < outW; ++x)
        {
            size_t const src = static_cast<size_t>(y / upscale) * w + static_cast<size_t>(x / upscale);
            size_t const hw = static_cast<size_t>(h) * w;
            float const r = toByte(frame[src]);
            float const g = channels >= 3 ? toByte(frame[hw + src]) : r;
            float const b = channels >= 3 ? toByte(frame[2 * hw + src]) : r;
            size_t const dst = static_cast<size_t>(y) * outW + x;
            yuv[dst] = static_cast<uint8_t>(std::lround(std::clamp(0.299F * r + 0.587F * g + 0.114F * b, 0.0F, 255.0F)));
            yuv[plane + dst] = static_cast<uint8_t>(
                std::lround(std::clamp(128.0F - 0.168736F * r - 0.331264F * g + 0.5F * b, 0.0F, 255.0F)));
            yuv[2 * plane + dst] = static_cast<uint8_t>(
                std::lround(std::clamp(128.0F + 0.5F * r - 0.418688F * g - 0.081312F * b, 0.0F, 255.0F)));
        }
    }
    return yuv;
}

int fail(char const* what)
{
    std::fprintf(stderr, "generate_y4m: %s: %s\n", what, pomrt_last_error());
    return 1;
}

//! What the video shows: the decoded RGB frames when the runtime decodes, else the latents.
struct Picture
{
    bool rgb{false};
    int32_t channels{0}, height{0}, width{0}, upscale{1};
    int32_t perCall{1}; //!< frames one pomrt_next_rgb call may return
};

void writeFrame(std::FILE* out, float const* frame, Picture const& p)
{
    std::vector<uint8_t> const yuv = toYuv444(frame, p.channels, p.height, p.width, p.upscale);
    std::fputs("FRAME\n", out);
    std::fwrite(yuv.data(), 1, yuv.size(), out);
}

//! The next latent frame of slot 0 as 1 video frame, or its decoded RGB frames; how many.
int32_t nextFrames(pomrt_runtime* rt, std::vector<float>& buffer, Picture const& p, std::FILE* out)
{
    int32_t written = 1;
    pomrt_status const status = p.rgb
        ? pomrt_next_rgb(rt, 0, buffer.data(), buffer.size() * sizeof(float), &written)
        : pomrt_next_frame(rt, 0, buffer.data(), buffer.size() * sizeof(float));
    if (status != POMRT_OK)
    {
        return -1;
    }
    size_t const frame = static_cast<size_t>(p.channels) * p.height * p.width;
    for (int32_t i = 0; i < written; ++i)
    {
        writeFrame(out, buffer.data() + i * frame, p);
    }
    return written;
}

} // namespace

int main(int argc, char** argv)
{
    Args args;
    if (!parseArgs(argc, argv, args))
    {
        std::fprintf(stderr,
            "usage: %s ARTIFACT_DIR OUT.y4m [--frames N] [--label L] [--seed S] [--steps N] [--cfg W] "
            "[--upscale K] [--fps F]\n",
            argv[0]);
        return 2;
    }
    pomrt_options options;
    pomrt_default_options(&options);
    options.steps = args.steps;
    options.cfg_scale = args.cfg;
    pomrt_runtime* rt = nullptr;
    if (pomrt_create(args.artifact.c_str(), &options, &rt) != POMRT_OK)
    {
        return fail("pomrt_create");
    }
    pomrt_model_info info;
    std::memset(&info, 0, sizeof(info));
    info.struct_size = sizeof(info);
    pomrt_rgb_info rgb;
    std::memset(&rgb, 0, sizeof(rgb));
    rgb.struct_size = sizeof(rgb);
    if (pomrt_info(rt, &info) != POMRT_OK || pomrt_decode_info(rt, &rgb) != POMRT_OK
        || pomrt_reset_stream(rt, 0, args.seed, args.label) != POMRT_OK)
    {
        int const status = fail("pomrt_info/pomrt_decode_info/pomrt_reset_stream");
        pomrt_destroy(rt);
        return status;
    }
    Picture picture{false, info.in_channels, info.height, info.width, args.upscale, 1};
    if (rgb.decodes)
    {
        picture = Picture{true, rgb.channels, rgb.height, rgb.width, 1, std::max(rgb.frames_first, rgb.frames_next)};
    }
    else
    {
        std::fprintf(stderr, "generate_y4m: writing latents (%s)\n", rgb.reason);
    }
    std::FILE* out = std::fopen(args.out.c_str(), "wb");
    if (out == nullptr)
    {
        std::fprintf(stderr, "generate_y4m: cannot write %s\n", args.out.c_str());
        pomrt_destroy(rt);
        return 1;
    }
    std::fprintf(out, "YUV4MPEG2 W%d H%d F%d:1 Ip A1:1 C444\n", picture.width * picture.upscale,
        picture.height * picture.upscale, args.fps);
    std::vector<float> buffer(static_cast<size_t>(picture.perCall) * picture.channels * picture.height * picture.width);
    int status = 0;
    int32_t written = 0;
    for (int32_t f = 0; f < args.frames; ++f)
    {
        int32_t const n = nextFrames(rt, buffer, picture, out);
        if (n < 0)
        {
            status = fail(picture.rgb ? "pomrt_next_rgb" : "pomrt_next_frame");
            break;
        }
        written += n;
    }
    std::fclose(out);
    pomrt_destroy(rt);
    if (status == 0)
    {
        std::fprintf(stderr, "generate_y4m: wrote %d %s frames (%d latent frames) to %s\n", written,
            picture.rgb ? "decoded RGB" : "latent", args.frames, args.out.c_str());
    }
    return status;
}
