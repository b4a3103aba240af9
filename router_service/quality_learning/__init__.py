"""The running router's quality learner: its config section and what feeds it.

`routing.learning` is the pure learner; this package wires it to a router process:
- `schema`: the `learning:` config section and its conversion to a `LearnerConfig`;
- `feed`: remembers which deployment answered each request and under which region, and files
  the scores `Feedback` brings for those requests into the learner.
"""
