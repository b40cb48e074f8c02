// Library entry point: the only file that knows every trexport op. ORT calls RegisterCustomOps when a
// session loads libtrexport_ops.so (SessionOptions.register_custom_ops_library in Python).
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "topk_gather/topk_gather.h"

#ifndef TREXPORT_OPS_VERSION
#define TREXPORT_OPS_VERSION "unknown"
#endif

namespace {

constexpr const char* kDomain = "ai.trexport";

// Version marker readable with `strings`; the same value is written to VERSION next to the .so.
__attribute__((used)) const char kVersionMarker[] = "trexport_ops version " TREXPORT_OPS_VERSION;

// Op objects must outlive every session that uses them, so they live until the library unloads. The
// domains (one per RegisterCustomOps call, a few bytes each) are deliberately never released: releasing
// them from a static destructor can run after onnxruntime itself is gone at process exit.
struct Registry {
  std::mutex mutex;
  std::vector<std::unique_ptr<OrtCustomOp>> ops;
};

Registry& GetRegistry() {
  static Registry registry;
  return registry;
}

// Every (op, execution provider, hidden_states type) kernel of the library.
std::vector<std::unique_ptr<OrtCustomOp>> MakeOps(const OrtApi& api) {
  using trexport::topk_gather::Device;
  using trexport::topk_gather::OpVariant;
  using trexport::topk_gather::TopKGatherOp;
  std::vector<Device> devices = {Device::kCpu};
#if defined(TREXPORT_WITH_CUDA)
  devices.push_back(Device::kCuda);
#endif
  std::vector<std::unique_ptr<OrtCustomOp>> ops;
  for (Device device : devices) {
    for (bool packed : {false, true}) {
      for (auto type : {ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16}) {
        ops.push_back(std::make_unique<TopKGatherOp>(api, OpVariant{packed, device, type}));
      }
    }
  }
  return ops;
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) OrtStatus* ORT_API_CALL RegisterCustomOps(OrtSessionOptions* options, const OrtApiBase* api_base) {
  const OrtApi* api = api_base->GetApi(ORT_API_VERSION);
  if (api == nullptr) {
    const OrtApi* v1 = api_base->GetApi(1);
    const std::string msg = std::string("trexport ops ") + TREXPORT_OPS_VERSION + " need onnxruntime >= 1." +
                            std::to_string(ORT_API_VERSION) + ", got " + api_base->GetVersionString();
    return v1 ? v1->CreateStatus(ORT_FAIL, msg.c_str()) : nullptr;
  }
  Ort::InitApi(api);  // ORT_API_MANUAL_INIT: the C++ helpers use this pointer

  Registry& registry = GetRegistry();
  std::lock_guard<std::mutex> lock(registry.mutex);
  if (registry.ops.empty()) registry.ops = MakeOps(*api);

  OrtCustomOpDomain* domain = nullptr;
  if (OrtStatus* status = api->CreateCustomOpDomain(kDomain, &domain)) return status;
  for (const auto& op : registry.ops) {
    if (OrtStatus* status = api->CustomOpDomain_Add(domain, op.get())) return status;
  }
  return api->AddCustomOpDomain(options, domain);
}

}  // extern "C"
