// Host glue shared by the CPU and CUDA TopKGather kernels: attributes, input checks, shape inference.
#include "topk_gather/topk_gather.h"

#include <atomic>
#include <cstring>
#include <string>
#include <vector>

namespace trexport {
namespace topk_gather {
namespace {

std::string ShapeString(const int64_t* dims, size_t rank) {
  std::string s = "[";
  for (size_t i = 0; i < rank; ++i) {
    if (i) s += ",";
    s += std::to_string(dims[i]);
  }
  return s + "]";
}

OrtStatusPtr Error(const OrtApi& api, const std::string& msg) {
  return api.CreateStatus(ORT_INVALID_ARGUMENT, msg.c_str());
}


// Reads the type, shape and data pointer of input `index`.
OrtStatusPtr InputTensor(const OrtApi& api, OrtKernelContext* ctx, size_t index, std::vector<int64_t>* dims,
                         ONNXTensorElementDataType* type, const void** data) {
  const OrtValue* value = nullptr;
  TREXPORT_RETURN_IF_ERROR(api.KernelContext_GetInput(ctx, index, &value));
  OrtTensorTypeAndShapeInfo* info = nullptr;
  TREXPORT_RETURN_IF_ERROR(api.GetTensorTypeAndShape(value, &info));
  size_t rank = 0;
  OrtStatusPtr status = api.GetDimensionsCount(info, &rank);
  if (!status) {
    dims->resize(rank);
    status = api.GetDimensions(info, dims->data(), rank);
  }
  if (!status) status = api.GetTensorElementType(info, type);
  api.ReleaseTensorTypeAndShapeInfo(info);
  if (status) return status;
  void* ptr = nullptr;
  TREXPORT_RETURN_IF_ERROR(api.GetTensorMutableData(const_cast<OrtValue*>(value), &ptr));
  *data = ptr;
  return nullptr;
}

// --- shape inference -------------------------------------------------------------------------------

struct Dim {
  int64_t value;     // >= 0 when known
  std::string name;  // symbolic name otherwise
};

std::string FreshSymbol(const char* what) {
  static std::atomic<uint64_t> counter{0};
  return std::string("trexport_") + what + "_" + std::to_string(counter.fetch_add(1));
}

OrtStatusPtr SetOutput(const OrtApi& api, OrtShapeInferContext* ctx, size_t index, ONNXTensorElementDataType type,
                       const std::vector<Dim>& dims) {
  std::vector<int64_t> values;
  std::vector<const char*> names;
  for (const Dim& d : dims) {
    values.push_back(d.name.empty() ? d.value : -1);
    names.push_back(d.name.c_str());
  }
  OrtTensorTypeAndShapeInfo* info = nullptr;
  TREXPORT_RETURN_IF_ERROR(api.CreateTensorTypeAndShapeInfo(&info));
  OrtStatusPtr status = api.SetTensorElementType(info, type);
  if (!status) status = api.SetDimensions(info, values.data(), values.size());
  if (!status) status = api.SetSymbolicDimensions(info, names.data(), names.size());
  if (!status) status = api.ShapeInferContext_SetOutputTypeShape(ctx, index, info);
  api.ReleaseTensorTypeAndShapeInfo(info);
  return status;
}

// Output shapes: [B, K, H], [B, K], [B, K], [B] (padded) or [T, H], [B+1], [T], [B] (packed), with B and H
// from hidden_states and a fresh symbol for K / T. ORT calls this with one op object per op name (whichever
// variant it saw first), so the hidden type comes from the input, not from `variant`.
OrtStatusPtr InferShapesImpl(const OrtApi& api, const OpVariant& variant, OrtShapeInferContext* ctx) {
  OrtTensorTypeAndShapeInfo* info = nullptr;  // owned by ctx
  TREXPORT_RETURN_IF_ERROR(api.ShapeInferContext_GetInputTypeShape(ctx, 0, &info));
  ONNXTensorElementDataType hidden_type = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
  TREXPORT_RETURN_IF_ERROR(api.GetTensorElementType(info, &hidden_type));
  size_t rank = 0;
  TREXPORT_RETURN_IF_ERROR(api.GetDimensionsCount(info, &rank));
  if (rank != 3) return nullptr;  // unknown or wrong rank: the kernel reports it at run time
  int64_t values[3];
  const char* names[3] = {nullptr, nullptr, nullptr};
  TREXPORT_RETURN_IF_ERROR(api.GetDimensions(info, values, 3));
  TREXPORT_RETURN_IF_ERROR(api.GetSymbolicDimensions(info, names, 3));
  Dim dim[3];
  for (int i = 0; i < 3; ++i) {
    if (names[i] && names[i][0]) {
      dim[i] = {-1, names[i]};
    } else if (values[i] >= 0) {
      dim[i] = {values[i], ""};
    } else {
      dim[i] = {-1, FreshSymbol(i == 0 ? "batch" : "hidden")};
    }
  }
  const Dim& b = dim[0];
  const Dim& h = dim[2];
  const Dim k{-1, FreshSymbol(variant.packed ? "kept_total" : "kept_tokens")};
  const ONNXTensorElementDataType i64 = ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
  if (!variant.packed) {
    TREXPORT_RETURN_IF_ERROR(SetOutput(api, ctx, 0, hidden_type, {b, k, h}));
    TREXPORT_RETURN_IF_ERROR(SetOutput(api, ctx, 1, i64, {b, k}));
    TREXPORT_RETURN_IF_ERROR(SetOutput(api, ctx, 2, i64, {b, k}));
  } else {
    const Dim b1 = b.name.empty() ? Dim{b.value + 1, ""} : Dim{-1, FreshSymbol("batch_plus_1")};
    TREXPORT_RETURN_IF_ERROR(SetOutput(api, ctx, 0, hidden_type, {k, h}));
    TREXPORT_RETURN_IF_ERROR(SetOutput(api, ctx, 1, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32, {b1}));
    TREXPORT_RETURN_IF_ERROR(SetOutput(api, ctx, 2, i64, {k}));
  }
  return SetOutput(api, ctx, 3, i64, {b});
}

// ORT ignores (and would leak) a returned status here, so failures only mean "no shape".
OrtStatusPtr InferShapes(const OrtCustomOp* op, OrtShapeInferContext* ctx) {
  const auto* self = static_cast<const TopKGatherOp*>(op);
  OrtStatusPtr status = InferShapesImpl(self->api_, self->variant_, ctx);
  if (status) self->api_.ReleaseStatus(status);
  return nullptr;
}

// --- attributes ------------------------------------------------------------------------------------

OrtStatusPtr ParseRule(const OrtApi& api, const OrtKernelInfo* info, const char* op, KeepRule* rule) {
  const std::string prefix = std::string(op) + ": ";
  size_t size = 0;
  OrtStatusPtr status = api.KernelInfoGetAttribute_string(info, "mode", nullptr, &size);
  if (status) {
    api.ReleaseStatus(status);
    return Error(api, prefix + "attribute 'mode' (string) is required");
  }
  std::string mode(size, '\0');
  TREXPORT_RETURN_IF_ERROR(api.KernelInfoGetAttribute_string(info, "mode", &mode[0], &size));
  mode.resize(std::strlen(mode.c_str()));
  if (mode == "threshold") {
    rule->mode = KeepMode::kThreshold;
  } else if (mode == "eta") {
    rule->mode = KeepMode::kEta;
  } else if (mode == "ratio") {
    rule->mode = KeepMode::kRatio;
  } else if (mode == "count") {
    rule->mode = KeepMode::kCount;
  } else {
    return Error(api, prefix + "unknown mode '" + mode + "' (expected threshold, eta, ratio or count)");
  }
  status = api.KernelInfoGetAttribute_float(info, "value", &rule->value);
  if (status) {
    api.ReleaseStatus(status);
    return Error(api, prefix + "attribute 'value' (float) is required");
  }
  int64_t keep_cls = 1;
  status = api.KernelInfoGetAttribute_int64(info, "keep_cls", &keep_cls);
  if (status) {
    api.ReleaseStatus(status);
    keep_cls = 1;
  }
  rule->keep_cls = keep_cls != 0;
  return nullptr;
}

}  // namespace

const char* OpName(bool packed) { return packed ? "TopKGatherPacked" : "TopKGather"; }

OrtStatusPtr ReadInputs(const OrtApi& api, OrtKernelContext* ctx, const OpVariant& variant, Inputs* out) {
  const char* op = OpName(variant.packed);
  std::vector<int64_t> hd, sd, md;
  ONNXTensorElementDataType ht, st, mt;
  const void *h, *s, *m;
  TREXPORT_RETURN_IF_ERROR(InputTensor(api, ctx, 0, &hd, &ht, &h));
  TREXPORT_RETURN_IF_ERROR(InputTensor(api, ctx, 1, &sd, &st, &s));
  TREXPORT_RETURN_IF_ERROR(InputTensor(api, ctx, 2, &md, &mt, &m));
  const std::string hs = ShapeString(hd.data(), hd.size());
  if (hd.size() != 3) {
    return Error(api, std::string(op) + ": hidden_states must be 3-D [B,S,H], got shape " + hs);
  }
  const std::string expected = "[" + std::to_string(hd[0]) + "," + std::to_string(hd[1]) + "]";
  if (sd.size() != 2 || sd[0] != hd[0] || sd[1] != hd[1]) {
    return Error(api, std::string(op) + ": scores shape " + ShapeString(sd.data(), sd.size()) +
                          " does not match hidden_states " + hs + " (expected " + expected + ")");
  }
  if (md.size() != 2 || md[0] != hd[0] || md[1] != hd[1]) {
    return Error(api, std::string(op) + ": attention_mask shape " + ShapeString(md.data(), md.size()) +
                          " does not match hidden_states " + hs + " (expected " + expected + ")");
  }
  if (ht != variant.type || st != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT || mt != ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64) {
    return Error(api, std::string(op) + ": unexpected input element types (hidden_states " + std::to_string(ht) +
                          ", scores " + std::to_string(st) + ", attention_mask " + std::to_string(mt) + ")");
  }
  out->hidden = h;
  out->scores = static_cast<const float*>(s);
  out->mask = static_cast<const int64_t*>(m);
  out->B = hd[0];
  out->S = hd[1];
  out->H = hd[2];
  out->elem_size = ht == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16 ? 2 : 4;
  return nullptr;
}

OrtStatusPtr AllocOutput(const OrtApi& api, OrtKernelContext* ctx, size_t index, const int64_t* dims, size_t rank,
                         void** data) {
  OrtValue* value = nullptr;
  TREXPORT_RETURN_IF_ERROR(api.KernelContext_GetOutput(ctx, index, dims, rank, &value));
  return api.GetTensorMutableData(value, data);
}

TopKGatherKernel::TopKGatherKernel(const OrtApi& api_in, const KeepRule& rule_in, const OpVariant& variant_in)
    : api(api_in), rule(rule_in), variant(variant_in) {}

TopKGatherKernel::~TopKGatherKernel() {
  if (cuda) ReleaseCudaState(cuda);
}

OrtStatusPtr TopKGatherKernel::ComputeV2(OrtKernelContext* ctx) {
  try {
    return variant.device == Device::kCuda ? ComputeCuda(*this, ctx) : ComputeCpu(*this, ctx);
  } catch (const std::exception& e) {
    return api.CreateStatus(ORT_RUNTIME_EXCEPTION, (std::string(OpName(variant.packed)) + ": " + e.what()).c_str());
  }
}

TopKGatherOp::TopKGatherOp(const OrtApi& api, const OpVariant& variant) : api_(api), variant_(variant) {
  OrtCustomOp::InferOutputShapeFn = &InferShapes;
}

OrtStatusPtr TopKGatherOp::CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const {
  KeepRule rule;
  TREXPORT_RETURN_IF_ERROR(ParseRule(api, info, GetName(), &rule));
  *kernel = new TopKGatherKernel(api, rule, variant_);
  return nullptr;
}

const char* TopKGatherOp::GetExecutionProviderType() const {
  return variant_.device == Device::kCuda ? "CUDAExecutionProvider" : "CPUExecutionProvider";
}

ONNXTensorElementDataType TopKGatherOp::GetInputType(size_t index) const {
  switch (index) {
    case 0: return variant_.type;
    case 1: return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
    default: return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
  }
}

ONNXTensorElementDataType TopKGatherOp::GetOutputType(size_t index) const {
  if (index == 0) return variant_.type;
  if (index == 1 && variant_.packed) return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32;
  return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
}

#if !defined(TREXPORT_WITH_CUDA)
OrtStatusPtr ComputeCuda(TopKGatherKernel& kernel, OrtKernelContext*) {
  return kernel.api.CreateStatus(ORT_NOT_IMPLEMENTED, "trexport ops were built without CUDA");
}
void ReleaseCudaState(CudaState*) {}
#endif

}  // namespace topk_gather
}  // namespace trexport
