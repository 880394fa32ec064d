import { App } from "aws-cdk-lib";
import { buildApp } from "./build.ts";

const app = new App();
buildApp(app);
app.synth();
