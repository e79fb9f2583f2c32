// Generate a video with the pomrt C API and write it as Y4M (YUV 4:4:4, playable by ffplay/mpv,
// convertible by ffmpeg -i out.y4m out.mp4).
//
//   generate_y4m ARTIFACT_DIR OUT.y4m [--frames 16] [--label 0] [--seed 0] [--steps 20]
//                [--cfg 2.0] [--upscale 16] [--fps 8]
//
// Frames of the tiny model are RGB images in about [-1, 1]: uint8 = round((x + 1) * 127.5),
// then nearest-neighbour upscaled (a 16x16 latent is hard to see), then BT.601 full-range YCbCr.
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

//! One latent (C x H x W) as upscaled Y, Cb, Cr planes (C == 1: grey; C >= 3: the first 3 are RGB).
std::vector<uint8_t> toYuv444(std::vector<float> const& frame, pomrt_model_info const& info, int32_t upscale)
{
    int32_t const h = info.height;
    int32_t const w = info.width;
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
            float const g = info.in_channels >= 3 ? toByte(frame[hw + src]) : r;
            float const b = info.in_channels >= 3 ? toByte(frame[2 * hw + src]) : r;
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
    if (pomrt_info(rt, &info) != POMRT_OK || pomrt_reset_stream(rt, 0, args.seed, args.label) != POMRT_OK)
    {
        int const status = fail("pomrt_info/pomrt_reset_stream");
        pomrt_destroy(rt);
        return status;
    }
    std::FILE* out = std::fopen(args.out.c_str(), "wb");
    if (out == nullptr)
    {
        std::fprintf(stderr, "generate_y4m: cannot write %s\n", args.out.c_str());
        pomrt_destroy(rt);
        return 1;
    }
    std::fprintf(out, "YUV4MPEG2 W%d H%d F%d:1 Ip A1:1 C444\n", info.width * args.upscale,
        info.height * args.upscale, args.fps);
    std::vector<float> frame(static_cast<size_t>(info.in_channels) * info.height * info.width);
    int status = 0;
    for (int32_t f = 0; f < args.frames && status == 0; ++f)
    {
        if (pomrt_next_frame(rt, 0, frame.data(), frame.size() * sizeof(float)) != POMRT_OK)
        {
            status = fail("pomrt_next_frame");
            break;
        }
        std::vector<uint8_t> const yuv = toYuv444(frame, info, args.upscale);
        std::fputs("FRAME\n", out);
        std::fwrite(yuv.data(), 1, yuv.size(), out);
    }
    std::fclose(out);
    pomrt_destroy(rt);
    if (status == 0)
    {
        std::fprintf(stderr, "generate_y4m: wrote %d frames to %s\n", args.frames, args.out.c_str());
    }
    return status;
}
