"""Promises kept on time: what is due is read from the incidents (`plan`), each job's work
(`jobs`), the one scheduler of a deployment (`runner`) and what it will do (`report`)."""
