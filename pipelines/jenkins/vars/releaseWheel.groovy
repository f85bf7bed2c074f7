// The wheel of the release deploy/environments/<env>.yml names, into dist/: copied from the archived artifacts of
// the build its artifact_run names (the build that built and tested it), never built again. The drift check needs
// it: the deploy playbook in --check mode collects the release's wheelhouse as a deploy would.
void call(String environment) {
    withEnv(["DEPLOY_ENV=${environment}"]) {
        String build = sh(label: "the build named in deploy/environments/${environment}.yml", returnStdout: true,
                          script: '''
                env_file="deploy/environments/$DEPLOY_ENV.yml"
                grep -E '^artifact_run:' "$env_file" | head -n 1 | cut -d: -f2- | tr -d '"[:space:]'
            ''').trim()
        if (!build) {
            error("deploy/environments/${environment}.yml names no artifact_run: promote a build first")
        }
        copyArtifacts(projectName: env.JOB_NAME, selector: specific(build), filter: 'dist/*.whl',
                      fingerprintArtifacts: true)
    }
}
