import { render } from "preact";
render(<p>cronvisor</p>, document.getElementById("app")!);
