// Type-checks that a TypeScript caller can build a request from the generated contract.
import { create } from "@bufbuild/protobuf";
import { CompleteRequestSchema, ChatRequestSchema, Role } from "./gen/router/v1/router_pb.js";

export const request = create(CompleteRequestSchema, {
  requestId: "example-1",
  chat: create(ChatRequestSchema, {
    messages: [{ role: Role.USER, content: "Hello" }],
    model: { selector: { case: "alias", value: "fast" } },
  }),
});
