/** The document GraphiQL opens with: the main operations, ready to run. */
export const DEFAULT_QUERY = `# inferql: ONNX models behind one typed GraphQL API.
# Pick an operation with the ▶ button. Subscriptions stream over WebSocket.

query Models {
  models {
    name
    task
    status
    inputs { name datatype shape }
    outputs { name datatype shape }
    labels
  }
}

mutation ClassifyTopic {
  classify(model: "fortune-topic", inputs: [{ text: "A friend in need is a friend indeed." }], topK: 3) {
    labels { label score }
    metrics { queueMs computeMs batchSize }
  }
}

mutation InferDigits {
  infer(model: "digits", inputs: [{
    name: "pixels", datatype: FP32, shape: [1, 64],
    data: [0,0,5,13,9,1,0,0,0,0,13,15,10,15,5,0,0,3,15,2,0,11,8,0,0,4,12,0,0,8,8,0,0,5,8,0,0,9,8,0,0,4,11,0,1,12,7,0,0,2,14,5,10,12,0,0,0,0,6,13,10,0,0,0]
  }]) {
    outputs { name shape data }
    metrics { queueMs computeMs batchSize }
  }
}

subscription ModelEvents {
  modelEvents { model kind status message at }
}
`;
