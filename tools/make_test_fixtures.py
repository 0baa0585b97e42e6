"""Builds the tiny ONNX models the test suite uses for edge cases (not shipped models).

static-batch: y = 2 * x with x float32 [1, 4] -- a model without a dynamic batch axis.

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


if __name__ == '__main__':
    static_batch()
    print('fixtures written to', os.path.normpath(ROOT))
