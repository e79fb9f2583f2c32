// C++ unit test of the CPU core: manifest parsing, path safety, sha256, schedule.
//
//   pomrt_test_manifest                      the unit checks
//   pomrt_test_manifest ARTIFACT_DIR NAME    also cache a file NAME into the artifact the way
//                                            the engine cache does (atomic write + device.json
//                                            entry; manifest.json untouched), then re-open it
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "pomrt/decoder_engines.hpp"
#include "pomrt/error.hpp"
#include "pomrt/manifest.hpp"
#include "pomrt/paths.hpp"
#include "pomrt/schedule.hpp"
#include "pomrt/sha256.hpp"

#include "check.hpp"

namespace fs = std::filesystem;
using namespace pomrt;

namespace
{
//! True when `body` throws an Error of `status` whose message contains `needle`.
template <typename Body>
bool throwsWith(Body&& body, pomrt_status status, std::string const& needle)
{
    try
    {
        body();
    }
    catch (Error const& e)
    {
        return e.status() == status && std::string(e.what()).find(needle) != std::string::npos;
    }
    return false;
}

// A manifest as export/artifact.py writes it (keys trimmed to what the parser reads + extras).
std::string const kManifest = R"({
  "format": "pomexport-artifact", "format_version": 1,
  "model": {"name": "tiny", "config": {"input_size": 16, "in_channels": 3, "patch_size": 2,
    "width": 96, "depth": 4, "order": 2, "expansion": 2, "variant": "moments", "gate": "sigmoid",
    "sel_heads": 1, "mlp_ratio": 4.0, "num_classes": 36, "video": true, "text_dim": 0,
    "class_dropout": 0.1}},
  "variant": "moments", "precision": "fp16", "flavors": {"portable": "model.onnx"}, "opset": 18,
  "batch": {"min": 1, "opt": 2, "max": 8},
  "io": {"inputs": [{"name": "x_t", "shape": ["B", 3, 16, 16], "dtype": "float16", "meaning": ""},
                    {"name": "state", "shape": [4, "B", 384], "dtype": "float32", "meaning": ""}],
         "outputs": [{"name": "v", "shape": ["B", 3, 16, 16], "dtype": "float16", "meaning": ""}]},
  "fp16_kept_fp32": [], "versions": {"torch": "2.13.0"},
  "engines": {"engines/a.plan": {"key": {"onnx_sha256": "ab"}}, "engines/b.plan": {"key": {"onnx_sha256": "cd"}}},
  "files": {"model.onnx": {"sha256": "ab", "bytes": 2}}
})";

void testParse()
{
    Manifest const m = parseManifest(kManifest, "manifest.json");
    CHECK(m.modelName == "tiny" && m.precision == "fp16" && m.variant == "moments");
    CHECK(m.config.stateWidth() == 384 && m.config.tokensPerFrame() == 64 && m.config.frameElements() == 768);
    CHECK(m.batchMin == 1 && m.batchOpt == 2 && m.batchMax == 8 && m.opset == 18);
    CHECK(m.input("state").dims == (std::vector<int64_t>{4, -1, 384}) && m.input("x_t").dtype == "float16");
    CHECK(m.output("v").dims[0] == -1 && m.files.at("model.onnx").bytes == 2);
    CHECK(!m.staleEngine("engines/a.plan") && m.staleEngine("engines/b.plan") && !m.staleEngine("engines/c.plan"));
    CHECK(throwsWith([] { parseManifest("[1, 2]", "m.json"); }, POMRT_ERR_ARTIFACT, "m.json: unreadable manifest"));
    std::string wrongVersion = kManifest;
    wrongVersion.replace(wrongVersion.find("\"format_version\": 1"), 19, "\"format_version\": 2");
    CHECK(throwsWith([&] { parseManifest(wrongVersion, "m.json"); }, POMRT_ERR_ARTIFACT, "format_version 2"));
    std::string wrongType = kManifest;
    wrongType.replace(wrongType.find("\"opset\": 18"), 11, "\"opset\": \"x\"");
    CHECK(throwsWith([&] { parseManifest(wrongType, "m.json"); }, POMRT_ERR_ARTIFACT, "'opset' has the wrong type"));
    CHECK(throwsWith([&] { m.input("text_emb"); }, POMRT_ERR_ARTIFACT, "no input 'text_emb'"));
}

void testPaths()
{
    fs::path const root = fs::temp_directory_path();
    CHECK(safeMember(root, "engines/a.plan", "m") == root / "engines/a.plan");
    for (char const* bad : {"../x", "a/../../x", "/etc/passwd", "..\\x", "C:\\x", ""})
    {
        CHECK(throwsWith([&] { safeMember(root, bad, "m"); }, POMRT_ERR_ARTIFACT, "m: refusing path"));
    }
}

void testHashAndSchedule()
{
    CHECK(sha256Bytes("abc", 3) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    std::vector<float> const t = timeSchedule(4, 3.0);
    CHECK(t.size() == 5 && t[0] == 1.0F && t[4] == 0.0F && t[2] == 0.75F);
    CHECK(throwsWith([] { timeSchedule(0, 1.0); }, POMRT_ERR_INVALID_ARGUMENT, "steps must be >= 1"));
}

// A wan-stream decoder entry as export/decoder.py writes it, with the builder's engine records
// (export/engine/decoder_engine.py) for an H100 on TensorRT 10.3.0.26: `first` current, `next`
// built from an earlier next.onnx.
std::string const kDecoder = R"(, "decoder": {"class": "AutoencoderKLWan", "kind": "wan-stream",
  "precision": "fp16", "batch": 1,
  "files": {"first": "decoder/first.onnx", "next": "decoder/next.onnx"},
  "frames_per_step": {"first": 1, "next": 4},
  "io": {"graphs": {
    "first": {"inputs": [{"name": "latent", "shape": [1, 3, 1, 16, 16], "dtype": "float32"}],
              "outputs": [{"name": "frames", "shape": [1, 3, 1, 128, 128], "dtype": "float32"},
                          {"name": "cache_00_out", "shape": [1, 8, 2, 16, 16], "dtype": "float32"}]},
    "next": {"inputs": [{"name": "latent", "shape": [1, 3, 1, 16, 16], "dtype": "float32"},
                        {"name": "cache_00", "shape": [1, 8, 2, 16, 16], "dtype": "float32"}],
             "outputs": [{"name": "frames", "shape": [1, 3, 4, 128, 128], "dtype": "float32"},
                         {"name": "cache_00_out", "shape": [1, 8, 2, 16, 16], "dtype": "float32"}]}},
    "state": {"pairs": [["cache_00", "cache_00_out"]]}},
  "engines": {
    "decoder/first-nvidia-h100-80gb-hbm3-sm90-trt10.3.0.plan": {"key": {"onnx_sha256": "f1",
      "trt_version": "10.3.0.26", "gpu_name": "NVIDIA H100 80GB HBM3", "sm": 90, "profile": []}},
    "decoder/next-nvidia-h100-80gb-hbm3-sm90-trt10.3.0.plan": {"key": {"onnx_sha256": "old",
      "trt_version": "10.3.0.26", "gpu_name": "NVIDIA H100 80GB HBM3", "sm": 90, "profile": []}},
    "decoder/first-orin-sm87-trt10.3.0.plan": {"key": {"onnx_sha256": "f1",
      "trt_version": "10.3.0.26", "gpu_name": "Orin", "sm": 72, "profile": []}},
    "decoder/next-orin-sm87-trt10.3.0.plan": "not a record"}})";

std::string const kDecoderFiles = R"("decoder/first.onnx": {"sha256": "f1"}, "decoder/next.onnx": {"sha256": "n2"},
  "decoder/first-nvidia-h100-80gb-hbm3-sm90-trt10.3.0.plan": {"sha256": "p1"},
  "decoder/next-nvidia-h100-80gb-hbm3-sm90-trt10.3.0.plan": {"sha256": "p2"},
  "decoder/first-orin-sm87-trt10.3.0.plan": {"sha256": "p3"}, "decoder/next-orin-sm87-trt10.3.0.plan": {"sha256": "p4"},
  )";

void testDecoderEngineChoice()
{
    CHECK(gpuSlug("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3" && gpuSlug(" Orin (nvgpu) ") == "orin-nvgpu");
    CHECK(trtRelease("10.3.0.26") == "10.3.0" && trtRelease("11.1") == "11.1.0" && trtRelease("10.x").empty());
    CHECK(decoderPlanName("next", "NVIDIA H100 80GB HBM3", 90, "10.3.0.26")
        == "decoder/next-nvidia-h100-80gb-hbm3-sm90-trt10.3.0.plan");
    std::string text = kManifest;
    text.insert(text.rfind("\n}"), kDecoder);
    text.insert(text.find("\"model.onnx\": {\"sha256\""), kDecoderFiles);
    Manifest const m = parseManifest(text, "manifest.json");
    CHECK(m.decoder && m.decoder->engines.size() == 3); // the untyped record is left out
    char const* h100 = "NVIDIA H100 80GB HBM3";
    DecoderEngineChoice const first = chooseDecoderEngine(m, "first", "10.3.0", h100, 90);
    CHECK(first.plan == "decoder/first-nvidia-h100-80gb-hbm3-sm90-trt10.3.0.plan" && first.reason.empty());
    DecoderEngineChoice const next = chooseDecoderEngine(m, "next", "10.3.0.30", h100, 90);
    CHECK(next.plan.empty() && next.reason.find("built from an earlier decoder/next.onnx") != std::string::npos);
    CHECK(chooseDecoderEngine(m, "first", "10.4.0", h100, 90).reason.find("trt10.4.0.plan: not in the artifact")
        != std::string::npos);
    CHECK(chooseDecoderEngine(m, "first", "10.3.0", "Orin", 87).reason.find("record names another target")
        != std::string::npos);
    CHECK(chooseDecoderEngine(m, "next", "10.3.0", "Orin", 87).reason.find("without an engine record")
        != std::string::npos);
    DecoderEngineSet const set = chooseDecoderEngines(m, "10.3.0", h100, 90);
    CHECK(set.plans.empty() && set.reason == next.reason); // all roles or none
    CHECK(throwsWith([&] { chooseDecoderEngine(m, "decode", "10.3.0", h100, 90); }, POMRT_ERR_INVALID_ARGUMENT,
        "a wan-stream decoder has no such graph"));
    CHECK(throwsWith([&] { chooseDecoderEngine(m, "first", "ten", h100, 90); }, POMRT_ERR_INVALID_ARGUMENT,
        "needs a version"));
    CHECK(chooseDecoderEngines(parseManifest(kManifest, "m.json"), "10.3.0", h100, 90).reason
        == "the artifact has no decoder stage");
}

// device.json's decoder plans (docs/design.md §6.1): what the bundle's build.sh records on the
// device, merged into the decoder entry's records (a shipped record of the same name dropped)
// and chosen like the manifest's; a name of no decoder role, or one the manifest lists, refused.
void testDeviceDecoderEngines()
{
    char dirTemplate[] = "/tmp/pomrt-test-device-XXXXXX";
    fs::path const dir = mkdtemp(dirTemplate);
    std::string text = kManifest;
    text.insert(text.rfind("\n}"), kDecoder);
    text.insert(text.find("\"model.onnx\": {\"sha256\""), R"("decoder/first.onnx": {"sha256": "f1"},
      "decoder/next.onnx": {"sha256": "n2"}, "decoder/first-nvidia-h100-80gb-hbm3-sm90-trt10.3.0.plan": {"sha256": "p1"},
      )");
    auto const merged = [&](std::string const& files, std::string const& engines) {
        atomicWrite(dir / kDeviceName,
            R"({"format": "pomexport-device-files", "format_version": 1, "manifest_sha256": ")"
                + sha256Bytes(text.data(), text.size()) + R"(", "files": {)" + files + R"(}, "engines": {)" + engines
                + "}}");
        Manifest m = parseManifest(text, "manifest.json");
        mergeDeviceFiles(dir, text, m, {});
        return m;
    };
    auto const entry = [](std::string const& name) { return "\"" + name + "\": {\"sha256\": \"aa\", \"bytes\": 2}"; };
    auto const record = [](std::string const& name, std::string const& graph) {
        return "\"" + name + "\": {\"key\": {\"onnx_sha256\": \"" + graph
            + "\", \"trt_version\": \"10.3.0\", \"gpu_name\": \"Orin\", \"sm\": 87, \"profile\": []}}";
    };
    std::string const first = "decoder/first-orin-sm87-trt10.3.0.plan";
    std::string const next = "decoder/next-orin-sm87-trt10.3.0.plan";
    Manifest const m = merged(entry(first) + ", " + entry(next), record(first, "f1") + ", " + record(next, "n2"));
    CHECK(m.files.count(first) == 1 && m.files.count(next) == 1);
    DecoderEngineSet const set = chooseDecoderEngines(m, "10.3.0.30", "Orin", 87);
    CHECK(set.reason.empty() && set.plans.size() == 2 && set.plans.at("first") == first && set.plans.at("next") == next);
    // Listed without a record: the shipped entry's record of that name (SM 72) is not this file's.
    Manifest const bare = merged(entry(first) + ", " + entry(next), record(next, "n2"));
    CHECK(chooseDecoderEngine(bare, "first", "10.3.0", "Orin", 87).reason.find("without an engine record")
        != std::string::npos);
    CHECK(throwsWith([&] { merged(entry("decoder/decode-orin-sm87-trt10.3.0.plan"), ""); }, POMRT_ERR_ARTIFACT,
        "is not the engine of a decoder role of this artifact (roles: first, next)"));
    CHECK(throwsWith([&] { merged(entry("decoder/first-nvidia-h100-80gb-hbm3-sm90-trt10.3.0.plan"), ""); },
        POMRT_ERR_ARTIFACT, "is already listed in manifest.json"));
    for (char const* name : {"decoder/first.onnx", "decoder/first-.plan", "decoder/sub/first-x.plan", "decoder/-x.plan"})
    {
        CHECK(throwsWith([&] { merged(entry(name), ""); }, POMRT_ERR_ARTIFACT, "may list only plugins/*.so"));
    }
    text = kManifest; // no decoder stage
    CHECK(throwsWith([&] { merged(entry(first), ""); }, POMRT_ERR_ARTIFACT, "(it has no decoder stage)"));
    fs::remove_all(dir);
}

int cacheInto(fs::path const& dir, std::string const& name)
{
    std::string const bytes = "engine bytes cached by pomrt\n";
    fs::create_directories((dir / name).parent_path());
    atomicWrite(dir / name, bytes);
    addDeviceFile(dir, name, FileEntry{sha256Bytes(bytes.data(), bytes.size()), bytes.size()});
    Artifact const artifact = Artifact::open(dir);
    CHECK(artifact.lists(name) && artifact.manifest().files.at(name).bytes == bytes.size());
    return 0;
}
} // namespace

int main(int argc, char** argv)
{
    try
    {
        testParse();
        testPaths();
        testHashAndSchedule();
        testDecoderEngineChoice();
        testDeviceDecoderEngines();
        if (argc == 3)
        {
            cacheInto(argv[1], argv[2]);
        }
    }
    catch (std::exception const& e)
    {
        std::fprintf(stderr, "unexpected exception: %s\n", e.what());
        return 1;
    }
    return pomrt_test::checkSummary("pomrt_test_manifest");
}
