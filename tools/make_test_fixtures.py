"""Builds the tiny ONNX models the test suite uses for edge cases (not shipped models).

static-batch: y = 2 * x with x float32 [1, 4] -- a model without a dynamic batch axis.
reshape3: y = reshape(x, [-1, 3]) with x float32 [batch, n] -- fails inside onnxruntime
  when batch * n is not a multiple of 3 (an internal error the server must mask).

Run: /usr/bin/python3 tools/make_test_fixtures.py
"""
import os

import onnx
from onnx import TensorProto, helper

ROOT = os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'models')


def static_batch():
    x = helper.make_tensor_value_info('x', TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info('y', TensorProto.FLOAT, [1, 4])
    two = helper.make_tensor('two', TensorProto.FLOAT, [], [2.0])
    node = helper.make_node('Mul', ['x', 'two'], ['y'])
    graph = helper.make_graph([node], 'static_batch', [x], [y], initializer=[two])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)], producer_name='inferql-fixtures')
    model.ir_version = 8
    onnx.checker.check_model(model)
    out = os.path.join(ROOT, 'static-batch')
    os.makedirs(out, exist_ok=True)
    onnx.save(model, os.path.join(out, 'model.onnx'))


def reshape3():
    x = helper.make_tensor_value_info('x', TensorProto.FLOAT, ['batch', 'n'])
    y = helper.make_tensor_value_info('y', TensorProto.FLOAT, ['rows', 3])
    shape = helper.make_tensor('shape', TensorProto.INT64, [2], [-1, 3])
    node = helper.make_node('Reshape', ['x', 'shape'], ['y'])
    graph = helper.make_graph([node], 'reshape3', [x], [y], initializer=[shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)], producer_name='inferql-fixtures')
    model.ir_version = 8
    onnx.checker.check_model(model)
    out = os.path.join(ROOT, 'reshape3')
    os.makedirs(out, exist_ok=True)
    onnx.save(model, os.path.join(out, 'model.onnx'))


if __name__ == '__main__':
    static_batch()
    reshape3()
    print('fixtures written to', os.path.normpath(ROOT))
