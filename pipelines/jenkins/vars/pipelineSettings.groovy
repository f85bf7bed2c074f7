// The settings of eventServicePipeline: its defaults, overridden by what the Jenkinsfile passes.
// One place for every name a Jenkins administrator has to create (credentials, agent label, lock names).
Map call(Map overrides = [:]) {
    Map defaults = [
        // Label of the agents that run the stages; they need make, Python, git and a container builder.
        agentLabel: 'linux',
        // Branch that deploys; any other branch runs Checks and Build only (the pull-request pipeline).
        defaultBranch: 'main',
        // Jenkins credential ids (the template repository's pipelines document lists them).
        registryCredentialsId: 'container-registry',     // username + password (or token) of the registry
        sshCredentialsId: 'ansible-ssh-key',             // SSH private key Ansible logs in to the hosts with
        vaultCredentialsId: 'ansible-vault-password',    // secret file: the Ansible vault password
        gitCredentialsId: 'git-push',                    // username + token: fetch main, push promote/* branches
        loadtestTokenCredentialsId: 'loadtest-auth-token', // secret text: a token staging accepts, for the load gate
        // URL of staging; the load gate targets it. Empty: `make loadtest` refuses, and main's build fails loudly.
        stagingUrl: '',
        // Users or groups allowed to approve the production deploy (comma-separated); empty = anyone with Build.
        approvers: '',
        // How long each review (staging, production) waits for its promotion to be merged.
        approvalTimeoutHours: 24,
        // Lockable Resources names: one deploy per environment at a time.
        lockPrefix: 'event-service-deploy',
        driftSchedule: 'H 5 * * *',
        junitReports: 'reports/junit*.xml',
        testReports: 'reports/**',
        loadtestReports: 'reports/loadtest/**',
    ]
    Map unknown = overrides.findAll { key, value -> !defaults.containsKey(key) }
    if (unknown) {
        error("eventServicePipeline: unknown settings ${unknown.keySet()}; known: ${defaults.keySet()}")
    }
    return defaults + overrides
}
